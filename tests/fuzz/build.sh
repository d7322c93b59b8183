#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c) against the C core (every csrc/**/*.c except
# the CPython module in csrc/py/) with clang's -fsanitize=fuzzer,address,undefined. ISA files get
# their own flags as in setup.py's ISA_FLAGS. Output: $FUZZ_OUT (default build/fuzz, never committed).
#
#   bash tests/fuzz/build.sh            # -> build/fuzz/fuzz_gguf, build/fuzz/fuzz_sampler, ...
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${FUZZ_OUT:-$REPO/build/fuzz}"
CC="${CC:-clang}"
case "$CC" in *clang*) ;; *) CC=clang ;; esac
mkdir -p "$OUT/obj"
cd "$REPO"

MACHINE="$(uname -m)"
CFLAGS=(-std=c11 -g -O1 -fno-omit-frame-pointer -pthread -Icsrc
        -fsanitize=address,undefined -fno-sanitize-recover=undefined)
case "$MACHINE" in
    x86_64|amd64|i?86) CFLAGS+=(-DLFM_IS_X86=1); X86=1; ARM=0 ;;
    aarch64|arm64) CFLAGS+=(-DLFM_IS_ARM64=1); X86=0; ARM=1 ;;
    *) X86=0; ARM=0 ;;
esac

isa_flags() {  # mirror of setup.py's ISA_FLAGS; prints "skip" for another architecture's file
    case "$1" in
        *_avx2.c) [ "$X86" = 1 ] && echo "-mavx2 -mfma -mf16c" || echo skip ;;
        *_avxvnni.c) [ "$X86" = 1 ] && echo "-mavxvnni -mavx2 -mfma -mf16c" || echo skip ;;
        *_avx512.c) [ "$X86" = 1 ] && echo "-mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c" \
                    || echo skip ;;
        *_avx512zmm.c) [ "$X86" = 1 ] && echo "-mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c" \
                       || echo skip ;;
        *_neon.c) [ "$ARM" = 1 ] && echo "-march=armv8-a" || echo skip ;;
        *_neon_dotprod.c) [ "$ARM" = 1 ] && echo "-march=armv8.2-a+dotprod" || echo skip ;;
        *_neon_i8mm.c) [ "$ARM" = 1 ] && echo "-march=armv8.2-a+dotprod+i8mm" || echo skip ;;
        *) echo "" ;;
    esac
}

# The core: instrumented for coverage (fuzzer-no-link), compiled in parallel, rebuilt when newer.
OBJS=()
pids=()
while IFS= read -r src; do
    extra="$(isa_flags "$src")"
    [ "$extra" = skip ] && continue
    obj="$OUT/obj/$(echo "${src#csrc/}" | tr / _).o"
    OBJS+=("$obj")
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find csrc -name '*.h' -newer "$obj" | head -1)" ]; then
        # shellcheck disable=SC2086
        "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link $extra -c "$src" -o "$obj" &
        pids+=($!)
        if [ "${#pids[@]}" -ge "${FUZZ_JOBS:-2}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    fi
done < <(find csrc -name '*.c' -not -path 'csrc/py/*' | sort)
for p in "${pids[@]}"; do wait "$p"; done

for t in tests/fuzz/fuzz_*.c; do
    name="$(basename "$t" .c)"
    "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer "$t" "${OBJS[@]}" -lm -o "$OUT/$name"
done
echo "fuzz: built $(ls tests/fuzz/fuzz_*.c | wc -l) targets into $OUT"
