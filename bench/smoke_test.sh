#!/bin/sh
# ctest bench_smoke: runs raggedattn-bench on a tiny custom shape, validates the JSON it writes
# with jq (smoke_check.jq), runs it again with --paged (smoke_check_paged.jq), with score
# modifiers (smoke_check_mods.jq) and with quantized K/V (smoke_check_quant.jq), and checks that
# bad flags fail with a clear message.
# Usage: smoke_test.sh BENCH JQ WORKDIR; RA_EMULATOR (optional) runs BENCH (cross builds).
set -eu
bench=$1
run_bench() { ${RA_EMULATOR:-} "$bench" "$@"; }
jq=$2
dir=$3
here=$(dirname "$0")
mkdir -p "$dir"
json=$dir/bench.json
rm -f "$json"

fail() {
    echo "bench_smoke: FAIL: $*" >&2
    exit 1
}

run_bench --B 3 --S 200 --hq 4 --hkv 2 --D 32 --lengths random --block 64 \
    --dtype f32,bf16 --threads 1,2 --kernel auto,blas --reps 10 --ref-reps 2 \
    --json "$json" >"$dir/table.txt" 2>"$dir/progress.txt" || fail "the bench exited with status $?"
cat "$dir/table.txt"

"$jq" empty "$json" || fail "$json is not valid JSON"
problems=$("$jq" -r -f "$here/smoke_check.jq" "$json") || fail "jq could not run the checks"
[ -z "$problems" ] || fail "$(printf 'JSON checks failed:\n%s' "$problems")"

# The table names the case and has one row per result, each ending in its flags.
grep -q '^== case custom' "$dir/table.txt" || fail "the table does not name the case"
rows=$(grep -c '^custom ' "$dir/table.txt")
[ "$rows" -eq 8 ] || fail "the table has $rows rows, expected 8"
flagged=$(grep -cE '^custom .* ([TS%]+|-)$' "$dir/table.txt")
[ "$flagged" -eq 8 ] || fail "$flagged of 8 rows end in a flags field (T, S, % or -)"
grep -qE 'flags$' "$dir/table.txt" || fail "the table has no flags column"
# The header describes this run (flags given), not a preset; progress stays off stdout.
grep -q '^raggedattn-bench: libraggedattn .*, custom run: --B 3 --S 200 ' "$dir/table.txt" ||
    fail "the header does not describe the custom run: $(head -1 "$dir/table.txt")"
! grep -q '^\[' "$dir/table.txt" || fail "progress lines reached stdout"
# A flagged row is explained after the tables.
if grep -qE '^custom .* [TS%]*[TS][TS%]*$' "$dir/table.txt"; then
    grep -q '^warning: .* unstable: the machine was busy' "$dir/table.txt" ||
        fail "unstable rows without the warning"
fi
if grep -qE '^custom .* [TS]*%$' "$dir/table.txt"; then
    grep -q '^warning: .* a share above 100%' "$dir/table.txt" ||
        fail "a share above 100% without the warning"
fi

# The table of a run without --paged has no paged columns, and one without modifiers none of
# theirs.
! grep -qE 'vs_contig|  page ' "$dir/table.txt" || fail "paged columns without --paged"
! grep -qE 'modifiers|vs_plain' "$dir/table.txt" || fail "modifier columns without modifiers"

# --paged: the contiguous cache and pools of 1 and 16 positions per page, side by side.
pjson=$dir/paged.json
rm -f "$pjson"
run_bench --B 3 --S 200 --hq 4 --hkv 2 --D 32 --lengths random --block 64 --dtype f32,bf16 \
    --threads 2 --paged 16,0,1 --reps 4 --ref-reps 1 --json "$pjson" >"$dir/paged.txt" \
    2>"$dir/paged_progress.txt" || fail "the --paged run exited with status $?"
cat "$dir/paged.txt"
"$jq" empty "$pjson" || fail "$pjson is not valid JSON"
problems=$("$jq" -r -f "$here/smoke_check_paged.jq" "$pjson") ||
    fail "jq could not run the paged checks"
[ -z "$problems" ] || fail "$(printf 'paged JSON checks failed:\n%s' "$problems")"
grep -qE '^case +kv +thr +page +kernel .* vs_contig +ref_ms' "$dir/paged.txt" ||
    fail "the --paged table has no page and vs_contig columns"
rows=$(grep -cE '^custom (f32|bf16) +2 +(contig|1|16) ' "$dir/paged.txt")
[ "$rows" -eq 6 ] || fail "the --paged table has $rows rows of a layout, expected 6"
[ "$(grep -cE '^custom .* contig .* - +[0-9.]+ ' "$dir/paged.txt")" -eq 2 ] ||
    fail "contiguous rows must show no vs_contig ratio"
[ "$(grep -cE '^custom .* +(1|16) [a-z0-9]+ .* [0-9.]+x +[0-9.]+ ' "$dir/paged.txt")" -eq 4 ] ||
    fail "paged rows must show their vs_contig ratio"
! grep -q 'not bitwise the contiguous' "$dir/paged.txt" || fail "a paged result differed"

# Score modifiers: every configuration runs plain and modified in the same rounds, on the
# contiguous cache and on pages of 16 (smoke_check_mods.jq).
mjson=$dir/mods.json
rm -f "$mjson"
run_bench --B 3 --S 200 --hq 4 --hkv 2 --D 32 --lengths random --block 64 --dtype f32 \
    --threads 2 --softcap 30 --window 50:4 --sinks --alibi --paged 0,16 --reps 3 --ref-reps 1 \
    --json "$mjson" >"$dir/mods.txt" 2>"$dir/mods_progress.txt" ||
    fail "the modifier run exited with status $?"
cat "$dir/mods.txt"
"$jq" empty "$mjson" || fail "$mjson is not valid JSON"
problems=$("$jq" -r -f "$here/smoke_check_mods.jq" "$mjson") ||
    fail "jq could not run the modifier checks"
[ -z "$problems" ] || fail "$(printf 'modifier JSON checks failed:\n%s' "$problems")"
grep -qE '^case +kv +thr +page +kernel +modifiers +median_ms .* vs_contig +vs_plain +ref_ms' \
    "$dir/mods.txt" || fail "the modifier table has no modifiers and vs_plain columns"
grep -q '^modifiers cap30,win50+4,sinks,alibi: the modified calls read [0-9]* of the [0-9]* ' \
    "$dir/mods.txt" || fail "the case header does not name the modifiers"
[ "$(grep -cE '^custom f32 +2 +(contig|16) +[a-z0-9]+ +- +[0-9.]+ .* - +[0-9.]+ +[0-9.]+x ' \
    "$dir/mods.txt")" -eq 2 ] || fail "plain rows must show no vs_plain and their reference"
[ "$(grep -cE '^custom f32 .* cap30,win50\+4,sinks,alibi .* [0-9.]+x +- +- +- +[TS%-]+$' \
    "$dir/mods.txt")" -eq 2 ] || fail "modified rows must show vs_plain and no reference columns"
! grep -q 'not bitwise the contiguous' "$dir/mods.txt" || fail "a paged modified result differed"

# Quantized K/V: codes and scales on the contiguous cache and on pages of 16, plain and
# modified, with the automatic and the portable kernel (smoke_check_quant.jq).
qjson=$dir/quant.json
rm -f "$qjson"
run_bench --B 3 --S 200 --hq 4 --hkv 2 --D 32 --lengths random --block 64 \
    --dtype i8,e4m3,fp8_e5m2 --threads 2 --kernel auto,portable --paged 0,16 --window 50:4 \
    --alibi --reps 3 --ref-reps 1 --json "$qjson" >"$dir/quant.txt" 2>"$dir/quant_progress.txt" ||
    fail "the quantized run exited with status $?"
cat "$dir/quant.txt"
"$jq" empty "$qjson" || fail "$qjson is not valid JSON"
problems=$("$jq" -r -f "$here/smoke_check_quant.jq" "$qjson") ||
    fail "jq could not run the quantized checks"
[ -z "$problems" ] || fail "$(printf 'quantized JSON checks failed:\n%s' "$problems")"
[ "$(grep -cE '^custom (i8|fp8_e4m3|fp8_e5m2) +2 +(contig|16) +[a-z0-9]+ +- .* - +- +[0-9.]+e-[0-9]+ +[TS%-]+$' \
    "$dir/quant.txt")" -eq 12 ] || fail "plain quantized rows must show rel_err and no reference"
[ "$(grep -cE '^custom (i8|fp8_e4m3|fp8_e5m2) .* win50\+4,alibi .* [0-9.]+x +- +- +- +[TS%-]+$' \
    "$dir/quant.txt")" -eq 12 ] || fail "modified quantized rows must show no reference or rel_err"
! grep -q 'not bitwise the contiguous' "$dir/quant.txt" || fail "a paged quantized result differed"

# expect_error STATUS MESSAGE ARGS...: the bench must exit with STATUS and say MESSAGE.
expect_error() {
    want=$1
    msg=$2
    shift 2
    set +e
    run_bench "$@" >/dev/null 2>"$dir/err.txt"
    got=$?
    set -e
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
    grep -qF -- "$msg" "$dir/err.txt" || fail "'$*' did not say '$msg': $(cat "$dir/err.txt")"
}
expect_error 2 "no workload named 'nosuch'" --case nosuch
expect_error 2 "--threads takes an integer in [1, 1024], not '0'" --threads 0
expect_error 2 "--hq 6 is not a multiple of --hkv 4" --hq 6 --hkv 4
expect_error 2 "unknown kernel 'sse'" --kernel sse
expect_error 2 "--lengths takes full or random" --lengths some
expect_error 2 "unknown option '--bogus'" --bogus
expect_error 2 "--reps needs a value" --reps
expect_error 2 "--paged takes an integer in [0, 65536], not '-16'" --paged=-16
expect_error 2 "--paged: too many page sizes (the limit is 8)" --paged 0,1,2,3,4,5,6,7,8
expect_error 2 "--softcap takes a finite number > 0, not '0'" --softcap 0
expect_error 2 "--softcap takes a finite number > 0, not 'nan'" --softcap nan
expect_error 2 "--window takes an integer in [1, " --window 0
expect_error 2 "--window's sink positions takes an integer in [0, " --window 64:-1
expect_error 2 "--sinks takes no value" --sinks=1
expect_error 2 "--dtype: unknown dtype 'int8'" --dtype bf16,int8
expect_error 2 "--qdtype: unknown dtype 'e4m3'" --qdtype e4m3
expect_error 1 "cannot write --json $dir/missing/x.json" --B 1 --S 8 --json "$dir/missing/x.json"

# --help documents every flag.
help=$(run_bench --help)
for flag in --case --dtype --threads --json --quick --hot --kernel --reps --B --S --hq --hkv \
    --D --lengths --block --paged --softcap --window --sinks --alibi i8 fp8_e4m3 fp8_e5m2; do
    echo "$help" | grep -qF -- "$flag" || fail "--help does not mention $flag"
done
echo "$help" | grep -qE '^  w +B=1 +S=65536 +Hq=32 +Hkv=8 +D=128 ' ||
    fail "--help does not list case w"

echo "bench_smoke: OK"
