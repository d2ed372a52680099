# Checks the JSON of smoke_test.sh's run; prints one line per failed check (nothing = pass).
def check(cond; msg): if cond then empty else msg end;
def size_of: if . == "f32" then 4 else 2 end;
def close_to($a; $b): ($a - $b | fabs) <= 1e-6 * ($b | fabs) + 1e-12;
# A flag must say whether $ratio exceeds $limit (figures within 1e-6 of it may go either way,
# since the JSON rounds them).
def flag_agrees($flag; $ratio; $limit):
  (($ratio - $limit) | fabs) < 1e-6 or $flag == ($ratio > $limit);

check(.schema == "raggedattn-bench/1"; "schema is \(.schema)"),
check(.library_version | test("^[0-9]+\\.[0-9]+\\.[0-9]+$"); "library_version \(.library_version)"),
check((.cpu_model | type) == "string" and (.cpu_model | length) > 0; "cpu_model missing"),
check(.nproc >= 1; "nproc \(.nproc)"),
check(.settings.reps == 10 and .settings.ref_reps == 2 and .settings.hot == false;
      "settings \(.settings)"),
check(.settings.stream_bytes >= 1073741824; "stream_bytes \(.settings.stream_bytes) < 1 GiB"),
check(.settings.page_sizes == [0]; "without --paged: page_sizes \(.settings.page_sizes)"),
check(.preset == "custom" and (.args | startswith("--B 3 --S 200")); "preset \(.preset), args \(.args)"),
check(.flag_limits.time_median_over_min == 1.25 and .flag_limits.stream_fastest_over_slowest == 1.25;
      "flag_limits \(.flag_limits)"),
check(.results | length == 8; "expected 8 results (2 dtypes x 2 threads x 2 kernels), got \(.results | length)"),
check([.results[].threads] | unique == [1, 2]; "thread counts \([.results[].threads] | unique)"),
check([.results[].kv_dtype] | unique == ["bf16", "f32"]; "dtypes \([.results[].kv_dtype] | unique)"),
(.results[] | . as $r | "\(.case) \(.kv_dtype) t\(.threads) \(.kernel_requested): " as $id |
  check(.case == "custom" and .B == 3 and .S == 200 and .Hq == 4 and .Hkv == 2 and .D == 32;
        $id + "wrong shape"),
  check(.block_size == 64 and .lengths_kind == "random" and .q_dtype == "f32"; $id + "wrong parameters"),
  check(close_to(.scale; 1 / (32 | sqrt)); $id + "scale \(.scale)"),
  check((.lengths | length) == 3 and all(.lengths[]; . >= 1 and . <= 200); $id + "lengths \(.lengths)"),
  check(.sum_lengths == (.lengths | add); $id + "sum_lengths \(.sum_lengths)"),
  check(.kv_bytes == .sum_lengths * .Hkv * .D * 2 * (.kv_dtype | size_of); $id + "kv_bytes \(.kv_bytes)"),
  check(.calls == 10 and .stream_passes == 10 and .ref_calls == 2; $id + "call counts"),
  check(.page_size == 0 and .num_pages == 0 and .time_vs_contiguous == null and
        .same_as_contiguous == null; $id + "paged fields in a contiguous run"),
  check(.time_min_s > 0 and .time_min_s <= .time_median_s; $id + "times \(.time_min_s) \(.time_median_s)"),
  check(.ref_time_min_s > 0 and .ref_time_min_s <= .ref_time_median_s; $id + "reference times"),
  check(.kv_gbs > 0 and close_to(.kv_gbs; .kv_bytes / .time_median_s / 1e9); $id + "kv_gbs \(.kv_gbs)"),
  check(.stream_gbs > 0 and close_to(.bw_fraction; .kv_gbs / .stream_gbs); $id + "bandwidth fraction"),
  check(close_to(.speedup; .ref_time_median_s / .time_median_s); $id + "speedup \(.speedup)"),
  check(.stream_slowest_gbs > 0 and .stream_slowest_gbs <= .stream_gbs and
        .stream_gbs <= .stream_fastest_gbs; $id + "stream passes \(.stream_slowest_gbs) \(.stream_gbs) \(.stream_fastest_gbs)"),
  check([.unstable_time, .unstable_stream, .unstable, .share_over_100] | all(type == "boolean");
        $id + "flags missing or not booleans"),
  check(.unstable == (.unstable_time or .unstable_stream); $id + "unstable \(.unstable)"),
  check(flag_agrees(.unstable_time; .time_median_s / .time_min_s; 1.25); $id + "unstable_time"),
  check(flag_agrees(.unstable_stream; .stream_fastest_gbs / .stream_slowest_gbs; 1.25);
        $id + "unstable_stream"),
  check(flag_agrees(.share_over_100; .bw_fraction; 1); $id + "share_over_100"),
  check(.kernel_requested == "auto" or .kernel == .kernel_requested; $id + "ran \(.kernel)"),
  check(.kernel | IN("blas", "portable", "avx2", "avx512", "neon"); $id + "kernel \(.kernel)"),
  # f32: both paths compute in f32 (the project's tolerance). bf16: the reference rounds the
  # probabilities and the PV sum to bf16 (2^-9 relative each), which the ragged path does not.
  check(.rel_err_against == "reference"; $id + "rel_err against \(.rel_err_against)"),
  check((.max_rel_err | type) == "number" and .max_rel_err >= 0 and
        .max_rel_err <= (if .kv_dtype == "f32" then 1e-5 else 1e-2 end);
        $id + "max_rel_err \(.max_rel_err)"))
