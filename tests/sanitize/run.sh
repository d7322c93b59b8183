#!/usr/bin/env bash
# Build liquidlfm._core with AddressSanitizer + UBSan (LIQUIDLFM_SANITIZE=1) into build/sanitize,
# then run the file-parser robustness tests (GGUF + safetensors corruption, fuzz) against that
# build with libasan preloaded. The in-place build in liquidlfm/ is not touched.
#
#   bash tests/sanitize/run.sh                 # default test set
#   bash tests/sanitize/run.sh tests/engine/test_x.py # other tests (paths relative to the repo)
#
# Any ASan/UBSan report aborts the Python process, so a sanitizer finding fails the run.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$REPO/build/sanitize"
STAGE="$OUT/stage"
cd "$REPO"

mkdir -p "$OUT"
if ! LIQUIDLFM_SANITIZE=1 python3 setup.py -q build_ext --build-lib "$OUT/lib" --build-temp "$OUT/tmp" -j2 \
        >"$OUT/build.log" 2>&1; then
    cat "$OUT/build.log"
    exit 1
fi

# A staging copy of the Python package + tests next to the sanitized extension (pytest puts the
# tests' root first on sys.path, so the in-place liquidlfm/ must not be importable from there).
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -r liquidlfm tests "$STAGE/"
find "$STAGE" -name '*.so' -delete
find "$STAGE" -name '__pycache__' -prune -exec rm -rf {} +
cp "$OUT"/lib/liquidlfm/_core*.so "$STAGE/liquidlfm/"

if [ "$#" -gt 0 ]; then
    TESTS=("$@")
else
    TESTS=(tests/formats/test_gguf_corrupt.py tests/formats/test_gguf_reader.py tests/sanitize/test_safetensors_fuzz.py)
    for f in tests/*/test_*safetensors*.py tests/*/test_*corrupt*.py; do
        [ -e "$f" ] || continue
        case " ${TESTS[*]} " in *" $f "*) ;; *) TESTS+=("$f") ;; esac
    done
fi

LIBASAN="$(gcc -print-file-name=libasan.so)"
export LIQUIDLFM_SHARED="${LIQUIDLFM_SHARED:-$(cd "$REPO/.." && pwd)/shared}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$STAGE"
echo "sanitized run: ${TESTS[*]}"
LD_PRELOAD="$LIBASAN" python3 -c "import liquidlfm, sys; print('sanitized _core from', liquidlfm._core.__file__)"
LD_PRELOAD="$LIBASAN" python3 -m pytest -q -p no:cacheprovider "${TESTS[@]}"
