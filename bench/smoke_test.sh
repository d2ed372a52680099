#!/bin/sh
# ctest bench_smoke: runs raggedattn-bench on a tiny custom shape, validates the JSON it writes
# with jq (smoke_check.jq), and checks that bad flags fail with a clear message.
# Usage: smoke_test.sh BENCH JQ WORKDIR
set -eu
bench=$1
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

"$bench" --B 3 --S 200 --hq 4 --hkv 2 --D 32 --lengths random --block 64 \
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

# expect_error STATUS MESSAGE ARGS...: the bench must exit with STATUS and say MESSAGE.
expect_error() {
    want=$1
    msg=$2
    shift 2
    set +e
    "$bench" "$@" >/dev/null 2>"$dir/err.txt"
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
expect_error 1 "cannot write --json $dir/missing/x.json" --B 1 --S 8 --json "$dir/missing/x.json"

# --help documents every flag the issue asks for.
help=$("$bench" --help)
for flag in --case --dtype --threads --json --quick --hot --kernel --reps --B --S --hq --hkv \
    --D --lengths --block; do
    echo "$help" | grep -qF -- "$flag" || fail "--help does not mention $flag"
done

echo "bench_smoke: OK"
