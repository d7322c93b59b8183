"""Install the llama.cpp the parity tests compare against: llama-cpp-python, built from source with
a pinned instruction set.

llama-cpp-python compiles llama.cpp for the build machine's CPU by default, so on an AVX-512 CPU the
reference would take AVX-512 paths that round differently from the AVX2 ones our kernels mirror bit
for bit. Building it with the AVX2 set pinned makes "bit-identical to llama.cpp" a claim that is
checked on every x86-64 machine with AVX2, whatever else the CPU has.

pip caches wheels it builds and reuses them whatever CMAKE_ARGS says, so the build bypasses the cache
and replaces any llama-cpp-python already installed with other flags. Running this again when the
pinned build is in place does nothing.

    python tools/install_llama_reference.py          # install or check
    python tools/install_llama_reference.py --check  # only report, exit 1 if not pinned
"""
import os
import platform
import subprocess
import sys

VERSION = "0.3.36"
# the CPU features llama.cpp's system info must report for the paths our kernels follow
PINNED_FEATURES = {"AVX": 1, "AVX2": 1, "FMA": 1, "F16C": 1, "AVX512": 0, "AVX512_VNNI": 0, "AVX_VNNI": 0,
                   "AMX_INT8": 0}
CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
              "-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF "
              "-DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF")


def installed_state():
    """(version or None, features dict) of the llama-cpp-python importable from a fresh process."""
    code = ("import llama_cpp, sys; sys.stdout.write(llama_cpp.__version__ + '\\n' + "
            "llama_cpp.llama_print_system_info().decode())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        return None, {}
    version, _, info = r.stdout.partition("\n")
    return version.strip(), parse_system_info(info)


def parse_system_info(info):
    """'CPU : SSE3 = 1 | AVX2 = 1 | ...' -> {'SSE3': 1, 'AVX2': 1, ...}"""
    features = {}
    for part in info.replace("CPU :", "|").split("|"):
        name, eq, value = part.partition("=")
        if eq and value.strip().isdigit():
            features[name.strip()] = int(value.strip())
    return features


def is_pinned(version, features):
    return version == VERSION and all(features.get(k, 0) == v for k, v in PINNED_FEATURES.items())


def main(argv):
    version, features = installed_state()
    if is_pinned(version, features):
        print(f"llama-cpp-python {VERSION} with the pinned AVX2 instruction set is installed")
        return 0
    if "--check" in argv:
        print(f"llama-cpp-python is {version or 'not installed'} with {features or 'no'} features; "
              f"want {VERSION} with {PINNED_FEATURES}")
        return 1
    if platform.machine().lower() not in ("x86_64", "amd64"):
        print("the pinned llama.cpp reference is an x86-64 AVX2 build; on this machine the bit-identical "
              "llama.cpp tests skip, saying so")
        return 0
    print(f"building llama-cpp-python {VERSION} with {CMAKE_ARGS} (several minutes)", flush=True)
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, FORCE_CMAKE="1")
    pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir"]
    subprocess.run(pip + ["--force-reinstall", "--no-deps", f"llama-cpp-python=={VERSION}"], env=env, check=True)
    subprocess.run(pip + [f"llama-cpp-python=={VERSION}"], env=env, check=True)  # its own dependencies
    version, features = installed_state()
    if not is_pinned(version, features):
        print(f"llama-cpp-python built, but reports {version} {features}", file=sys.stderr)
        return 1
    print(f"llama-cpp-python {VERSION} with the pinned AVX2 instruction set is installed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
