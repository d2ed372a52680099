# Checks the JSON of smoke_test.sh's modifier run (--softcap 30 --window 50:4 --sinks --alibi
# --paged 0,16, one dtype, one thread count, one kernel); prints one line per failed check
# (nothing = pass).
def check(cond; msg): if cond then empty else msg end;
def close_to($a; $b): ($a - $b | fabs) <= 1e-6 * ($b | fabs) + 1e-12;
# the library's window rule: positions t >= len - 50 or t < 4
def visible: [.[] | if . <= 50 then . else 50 + ([4, . - 50] | min) end] | add;

check(.settings.modifiers == {"softcap": 30, "window": 50, "sink_positions": 4, "sinks": true,
                              "alibi": true}; "settings.modifiers \(.settings.modifiers)"),
check(.results | length == 4; "expected 4 results (2 layouts x plain, modified), got \(.results | length)"),
check([.results[] | [.page_size, .modifiers]] | unique | length == 4; "a row is missing or repeated"),
check([.results[0].lengths[] | select(. > 54)] | length > 0;
      "no sequence is longer than the window and its sink positions: the run does not test it"),
(.results as $all | .results[] | . as $r |
  "page \(.page_size) \(.modifiers): " as $id |
  ($all | map(select(.page_size == $r.page_size and .modifiers == "-")) | .[0]) as $plain |
  ($all | map(select(.page_size == 0 and .modifiers == $r.modifiers)) | .[0]) as $contig |
  check($plain != null; $id + "no plain row beside it"),
  check(close_to(.kv_gbs; .kv_bytes / .time_median_s / 1e9); $id + "kv_gbs \(.kv_gbs)"),
  check(close_to(.bw_fraction; .kv_gbs / .stream_gbs); $id + "bw_fraction \(.bw_fraction)"),
  check(.kv_bytes == .visible_positions * .Hkv * .D * 2 * 4; $id + "kv_bytes \(.kv_bytes)"),
  if .modifiers == "-" then
    check(.softcap == 0 and .window == 0 and .sink_positions == 0 and .sinks == false and
          .alibi == false; $id + "a plain row with modifier fields"),
    check(.visible_positions == .sum_lengths; $id + "visible_positions \(.visible_positions)"),
    check(.vs_plain == null and .plain_time_median_s == null; $id + "vs_plain on a plain row"),
    check(.ref_calls == 1 and (.max_rel_err | type) == "number" and .max_rel_err <= 1e-5 and
          close_to(.speedup; .ref_time_median_s / .time_median_s); $id + "reference columns")
  else
    check(.modifiers == "cap30,win50+4,sinks,alibi"; $id + "label"),
    check(.softcap == 30 and .window == 50 and .sink_positions == 4 and .sinks and .alibi;
          $id + "modifier fields \(.softcap) \(.window) \(.sink_positions) \(.sinks) \(.alibi)"),
    check(.visible_positions == (.lengths | visible); $id + "visible_positions \(.visible_positions), want \(.lengths | visible)"),
    check(.plain_time_median_s == $plain.time_median_s; $id + "plain_time_median_s"),
    check(close_to(.vs_plain; .time_median_s / $plain.time_median_s); $id + "vs_plain \(.vs_plain)"),
    # the reference computes no modifiers: nothing to time or compare
    check(.ref_calls == 0 and .ref_time_median_s == null and .speedup == null and
          .max_rel_err == null; $id + "reference columns on a modified row")
  end,
  if .page_size == 0 then
    check(.time_vs_contiguous == null and .same_as_contiguous == null; $id + "contiguous row with paged fields")
  else
    check(.same_as_contiguous == true; $id + "not bitwise the contiguous result with the same modifiers"),
    check(close_to(.time_vs_contiguous; .time_median_s / $contig.time_median_s);
          $id + "time_vs_contiguous \(.time_vs_contiguous)")
  end)
