#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ and runs them (see README, "Fuzzing").
#
#   scripts/fuzz.sh            every target for FUZZ_SECONDS (default 60) each   (make fuzz)
#   scripts/fuzz.sh short      every target for FUZZ_SECONDS (default 5) each    (make test)
#   FUZZ_TARGETS="FuzzSession FuzzDataFramer" scripts/fuzz.sh   only those
#   FUZZ_JOBS=2                libFuzzer workers per target (-fork)
#   FUZZ_MERGE=1               afterwards, merge inputs with new coverage into Fuzz/<target>/corpus
#
# Each run first replays every committed input (Fuzz/<target>/corpus, which holds the
# seeds and every input that once crashed) and fails on any crash; then it fuzzes with
# the target's dictionary (Fuzz/<target>/dict), new inputs kept out of the repository
# in .build-fuzz/corpus/<target>, crashes written to .build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-full}
case "$mode" in
    full) seconds=${FUZZ_SECONDS:-60} ;;
    short) seconds=${FUZZ_SECONDS:-5} ;;
    *) echo "usage: $0 [full|short]" >&2; exit 2 ;;
esac
SWIFT=${SWIFT:-swift}
all=$(cd Fuzz && ls -d Fuzz*/ | tr -d /)
targets=${FUZZ_TARGETS:-$all}
jobs=${FUZZ_JOBS:-1}

export TOLLGATE_FUZZ=1
# swiftc keeps only the last of several -sanitize= flags, so SwiftPM's
# `--sanitize=fuzzer --sanitize=address` compiles Swift with ASan but without the coverage
# that -sanitize=fuzzer implies; the coverage is asked for explicitly (clang, for the C
# targets, takes both). SwiftPM's --sanitize=fuzzer also links libFuzzer's main.
build=("$SWIFT" build --scratch-path .build-fuzz --sanitize=fuzzer --sanitize=address
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp)
start=$(date +%s)
# One build of everything the fuzz-mode manifest declares (the targets and what they link).
"${build[@]}" 2>&1 | grep -v "warning: Cannot export local symbol" | grep -E "error|Build complete" || true
bin=$("${build[@]}" --show-bin-path)
echo "fuzz: built $(echo "$targets" | wc -w) targets in $(( $(date +%s) - start )) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
# Swift's backtracer reads freed memory while it reports a trap, which ASan then reports
# instead of the trap; libFuzzer's own report is enough.
export SWIFT_BACKTRACE=enable=no
mkdir -p .build-fuzz/artifacts
failed=()
summary=()
for t in $targets; do
    exe="$bin/$t"
    [ -x "$exe" ] || { echo "fuzz: $exe was not built" >&2; failed+=("$t(build)"); continue; }
    seeds="Fuzz/$t/corpus"
    work=".build-fuzz/corpus/$t"
    log=".build-fuzz/$t.log"
    mkdir -p "$work"
    # Every committed input once: the regression replay.
    if ! "$exe" -runs=0 -artifact_prefix=".build-fuzz/artifacts/$t-replay-" "$seeds" >"$log.replay" 2>&1; then
        echo "fuzz: $t crashed on a committed input:" >&2
        tail -40 "$log.replay" >&2
        failed+=("$t(replay)")
        continue
    fi
    dict=()
    [ -f "Fuzz/$t/dict" ] && dict=(-dict="Fuzz/$t/dict")
    fork=()
    [ "$jobs" -gt 1 ] && fork=(-fork="$jobs" -ignore_crashes=0)
    if "$exe" "${dict[@]}" "${fork[@]}" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix=".build-fuzz/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1; then
        :
    else
        echo "fuzz: $t found a crash (log: $log):" >&2
        grep -E "property violated|Fatal error|ERROR: AddressSanitizer|SUMMARY|Test unit written" "$log" | head -10 >&2
        failed+=("$t")
    fi
    runs=$(grep -Eo "stat::number_of_executed_units: *[0-9]+" "$log" | grep -Eo "[0-9]+$" | tail -1)
    [ -n "$runs" ] || runs=$(grep -Eo "#[0-9]+" "$log" | tail -1 | tr -d '#')
    cov=$(grep -Eo "cov: [0-9]+" "$log" | tail -1 | grep -Eo "[0-9]+" || true)
    counters=$(grep -Eo "\([0-9]+ inline 8-bit counters\)" "$log" | head -1 | grep -Eo "^\([0-9]+" | tr -d '(' || true)
    corpus=$(ls "$work" | wc -l)
    summary+=("$(printf '%-18s %10s runs %6s of %6s edges %5s corpus files (+%s committed)' "$t" "${runs:-?}" "${cov:-?}" "${counters:-?}" "$corpus" "$(ls "$seeds" | wc -l)")")
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        "$exe" -merge=1 "$seeds" "$work" >"$log.merge" 2>&1 || true
    fi
done

echo "fuzz: ${seconds}s per target"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (crashing inputs in .build-fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no crashes"
