# Checks the JSON of smoke_test.sh's --paged run (--paged 16,0,1, two dtypes, one thread count,
# one kernel); prints one line per failed check (nothing = pass).
def check(cond; msg): if cond then empty else msg end;
def close_to($a; $b): ($a - $b | fabs) <= 1e-6 * ($b | fabs) + 1e-12;
def ceil_div($a; $b): (($a + $b - 1) / $b | floor);

check(.settings.page_sizes == [0, 1, 16]; "settings.page_sizes \(.settings.page_sizes)"),
check(.results | length == 6; "expected 6 results (2 dtypes x 3 layouts), got \(.results | length)"),
check([.results[] | [.kv_dtype, .page_size]] | unique | length == 6; "a layout is missing or repeated"),
(.results as $all | .results[] | . as $r |
  "\(.kv_dtype) page \(.page_size): " as $id |
  ($all | map(select(.kv_dtype == $r.kv_dtype and .page_size == 0 and
                     .kernel_requested == $r.kernel_requested and .threads == $r.threads)) | .[0])
    as $c |
  check($c != null; $id + "no contiguous row beside it"),
  check(.kv_bytes == $c.kv_bytes and .sum_lengths == $c.sum_lengths; $id + "kv_bytes \(.kv_bytes)"),
  check(.calls == 4 and .ref_calls == 1; $id + "call counts"),
  check(close_to(.kv_gbs; .kv_bytes / .time_median_s / 1e9); $id + "kv_gbs \(.kv_gbs)"),
  check(close_to(.speedup; .ref_time_median_s / .time_median_s); $id + "speedup \(.speedup)"),
  # the same reference timing serves every layout of the configuration
  check(.ref_time_median_s == $c.ref_time_median_s; $id + "another reference time"),
  check((.max_rel_err | type) == "number" and .max_rel_err <= (if .kv_dtype == "f32" then 1e-5 else 1e-2 end);
        $id + "max_rel_err \(.max_rel_err)"),
  if .page_size == 0 then
    check(.num_pages == 0 and .time_vs_contiguous == null and .same_as_contiguous == null;
          $id + "contiguous row with paged fields \(.num_pages) \(.time_vs_contiguous) \(.same_as_contiguous)")
  else
    check(.num_pages == ([.lengths[] | ceil_div(.; $r.page_size)] | add); $id + "num_pages \(.num_pages)"),
    check(.same_as_contiguous == true; $id + "not bitwise the contiguous result"),
    # bitwise the same output: the same error against the reference
    check(.max_rel_err == $c.max_rel_err; $id + "max_rel_err \(.max_rel_err) vs contiguous \($c.max_rel_err)"),
    check(close_to(.time_vs_contiguous; .time_median_s / $c.time_median_s);
          $id + "time_vs_contiguous \(.time_vs_contiguous)")
  end)
