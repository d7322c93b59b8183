"""tests/fuzz/build.sh compiles the C core itself, not through setup.py, so it keeps its own copy of
setup.py's per-file ISA flags. Every ISA file suffix setup.py knows must build there with the same
flags, or a new kernel level breaks only the fuzz pass of CI (as avx512zmm did once)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def setup_isa_flags():
    text = (REPO / "setup.py").read_text()
    found = re.findall(r'"(_\w+\.c)": \((X86|ARM64), \[([^\]]*)\]\)', text)
    return {suffix: (arch, re.findall(r'"([^"]+)"', flags)) for suffix, arch, flags in found}


def fuzz_isa_flags():
    text = (REPO / "tests" / "fuzz" / "build.sh").read_text()
    found = re.findall(r'\*(_\w+\.c)\) \[ "\$(X86|ARM)" = 1 \] && echo "([^"]*)"', text)
    return {suffix: ("ARM64" if arch == "ARM" else arch, flags.split()) for suffix, arch, flags in found}


def test_fuzz_build_has_setup_pys_isa_flags():
    ours = setup_isa_flags()
    assert len(ours) >= 7, ours  # the parse found the table
    assert fuzz_isa_flags() == ours
