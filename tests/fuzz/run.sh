#!/usr/bin/env bash
# Build the libFuzzer targets (ASan + UBSan), generate the seed corpora, replay the committed
# reproducers in tests/fuzz/crashes/<target>/, then fuzz each target for a bounded time: the C
# targets (fuzz_*.c) FUZZ_SECONDS each, the atheris targets (py_targets.py) FUZZ_PY_SECONDS each.
# Fails if any target crashes, leaks, times out or runs out of memory; prints the reproducer path.
#
#   bash tests/fuzz/run.sh                    # all targets: 40 s per C target, 20 s per Python one
#   FUZZ_SECONDS=600 bash tests/fuzz/run.sh gguf state py_chat_template   # a longer local run
#
# Output: build/fuzz (binaries, seeds, corpora, logs, artifacts); nothing here is committed.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${FUZZ_OUT:-$REPO/build/fuzz}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-40}"
cd "$REPO"
t0=$(date +%s)

if ! command -v clang >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
python3 -c "import atheris" 2>/dev/null || pip install -q atheris  # libFuzzer for the Python targets
FUZZ_OUT="$OUT" bash tests/fuzz/build.sh
rm -rf "$OUT/seeds"
python3 tests/fuzz/make_seeds.py "$OUT/seeds" >"$OUT/seeds.log" 2>&1 || { cat "$OUT/seeds.log"; exit 1; }
grep '^make_seeds:' "$OUT/seeds.log"
echo "fuzz: built and seeded in $(($(date +%s) - t0))s"

C_TARGETS=()
for f in tests/fuzz/fuzz_*.c; do n="$(basename "$f" .c)"; C_TARGETS+=("${n#fuzz_}"); done
C_TARGETS+=(state_lfm3)  # fuzz_state again, on an LFM3 model (sliding-window ring in the blob)
PY_TARGETS=(py_tokenizer_json py_gguf_vocab py_chat_template)  # atheris, tests/fuzz/py_targets.py
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${C_TARGETS[@]}" "${PY_TARGETS[@]}"); fi

export FUZZ_MODEL="$OUT/seeds/model.gguf"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
FLAGS=(-rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
total_execs=0
failed=()
for t in "${TARGETS[@]}"; do
    case "$t" in
        py_*) cmd=(python3 tests/fuzz/py_targets.py "${t#py_}"); secs="${FUZZ_PY_SECONDS:-20}" ;;
        state_lfm3) cmd=(env FUZZ_MODEL="$OUT/seeds/model-lfm3.gguf" "$OUT/fuzz_state"); secs="$SECONDS_PER_TARGET" ;;
        *) cmd=("$OUT/fuzz_$t"); secs="$SECONDS_PER_TARGET" ;;
    esac
    dict=()
    [ -e "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    work="$OUT/run/$t"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$OUT/seeds/$t"/* "$work/corpus/" 2>/dev/null || true
    # 1. regressions: every committed reproducer must now run cleanly
    if compgen -G "tests/fuzz/crashes/$t/*" >/dev/null; then
        for f in tests/fuzz/crashes/"$t"/*; do
            [ "$(basename "$f")" = README.md ] && continue
            if ! "${cmd[@]}" "${FLAGS[@]}" "$f" >"$work/replay.log" 2>&1; then
                echo "fuzz: $t: committed reproducer $f still fails:"
                grep -E "ERROR|SUMMARY|runtime error|Uncaught|Error:|^==.*(out-of-memory|timeout)" "$work/replay.log" | head -4 || true
                failed+=("$t:$(basename "$f")")
            fi
        done
    fi
    # 2. bounded fuzzing from the seeds
    rc=0
    "${cmd[@]}" "${FLAGS[@]}" "${dict[@]}" -max_total_time="$secs" -artifact_prefix="$work/artifacts/" "$work/corpus" \
        >"$work/fuzz.log" 2>&1 || rc=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)"
    [ -n "$execs" ] || execs="$(grep -oE '^#[0-9]+' "$work/fuzz.log" | tail -1 | tr -d '#' || true)"
    execs="${execs:-0}"
    total_execs=$((total_execs + execs))
    cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/fuzz.log" | tail -1 || true)"
    if [ "$rc" -ne 0 ]; then
        art="$(ls -t "$work/artifacts" 2>/dev/null | head -1 || true)"
        echo "fuzz: $t: FAILED after $execs executions ($cov): reproducer $work/artifacts/$art"
        grep -E "ERROR|SUMMARY|runtime error|Uncaught|Error:" "$work/fuzz.log" | head -4 || true
        echo "fuzz: $t: replay with: FUZZ_MODEL=$FUZZ_MODEL ${cmd[*]} $work/artifacts/$art"
        failed+=("$t")
    else
        echo "fuzz: $t: $execs executions, $cov, no crash"
    fi
done

n=${#TARGETS[@]}
dt=$(($(date +%s) - t0))
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: $n targets, $total_execs executions, ${#failed[@]} failing: ${failed[*]} (${dt}s)"
    exit 1
fi
echo "fuzz: $n targets, $total_execs executions, no crash (${dt}s)"
