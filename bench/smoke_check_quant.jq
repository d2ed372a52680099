# Checks the JSON of smoke_test.sh's quantized run (--dtype i8,e4m3,fp8_e5m2, --paged 0,16,
# --kernel auto,portable, --window 50:4 --alibi, one thread count); prints one line per failed
# check (nothing = pass).
def check(cond; msg): if cond then empty else msg end;

check(.results | length == 24;
      "expected 24 results (3 dtypes x 2 layouts x 2 kernels x plain, modified), got \(.results | length)"),
check([.results[].kv_dtype] | unique == ["fp8_e4m3", "fp8_e5m2", "i8"];
      "dtypes \([.results[].kv_dtype] | unique)"),
(.results as $all | .results[] | . as $r |
  "\(.kv_dtype) page \(.page_size) \(.kernel_requested) \(.modifiers): " as $id |
  ($all | map(select(.kv_dtype == $r.kv_dtype and .page_size == 0 and .modifiers == $r.modifiers
                     and .kernel_requested == $r.kernel_requested)) | .[0]) as $c |
  # one byte per code and one f32 scale per position and KV head, for K and for V
  check(.kv_bytes == .visible_positions * .Hkv * (.D + 4) * 2; $id + "kv_bytes \(.kv_bytes)"),
  check(.kernel_requested != "portable" or .kernel == "portable"; $id + "ran \(.kernel)"),
  # the reference takes no quantized K/V: no reference columns on any row
  check(.ref_calls == 0 and .ref_time_median_s == null and .speedup == null;
        $id + "reference columns"),
  if .modifiers == "-" then
    check(.rel_err_against == "dequantized_f32" and (.max_rel_err | type) == "number" and
          .max_rel_err < 1e-5; $id + "max_rel_err \(.max_rel_err) against \(.rel_err_against)")
  else
    check(.rel_err_against == null and .max_rel_err == null; $id + "an error on a modified row")
  end,
  if .page_size != 0 then
    check(.same_as_contiguous == true; $id + "not bitwise the contiguous result"),
    check(.max_rel_err == $c.max_rel_err; $id + "max_rel_err \(.max_rel_err) vs contiguous \($c.max_rel_err)")
  else empty end)
