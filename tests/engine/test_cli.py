"""The `liquidlfm` command: one set of subcommands (translate, scholar, quantize, download, generate,
chat), each run for real once on the tiny random-weight models the other tests build, the `python -m`
forms they delegate to, and the plain ImportError of a source tree without a built extension."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import liquidlfm as lfm

REPO = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ["translate", "scholar", "quantize", "download", "generate", "chat"]


def run(args, *, cwd, env=None, stdin=None, module="liquidlfm", timeout=300):
    e = dict(os.environ, PYTHONPATH=str(REPO), LIQUIDLFM_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], input=stdin, env=e, cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tiny_chat_model):
    return tiny_chat_model


# ---- help ----

def test_console_script_is_this_main():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"liquidlfm": "liquidlfm.__main__:main"}


def test_help_lists_every_subcommand(tmp_path):
    r = run(["--help"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: liquidlfm ")
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in r.stdout, name


@pytest.mark.parametrize("name,option,prog", [
    ("translate", "--to TARGET", "liquidlfm translate"), ("scholar", "--corpus PATH", "liquidlfm scholar"),
    ("quantize", "--type", "python -m liquidlfm.quantize"), ("download", "--purpose", "liquidlfm download"),
    ("generate", "--max-tokens", "liquidlfm generate"), ("chat", "--system", "liquidlfm chat"),
])
def test_subcommand_help(name, option, prog, tmp_path):
    r = run([name, "--help"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {prog} ") and option in r.stdout


def test_unknown_subcommand_is_an_argparse_error(tmp_path):
    r = run(["serve-everything"], cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr


# ---- one real run each ----

@pytest.mark.reference
def test_translate_same_as_python_m(tiny_chat_dir, tmp_path):
    args = ["--to", "ko", "--max-tokens", "4", "--model", str(tiny_chat_dir), "The weather is nice today."]
    r = run(["translate", *args], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref = run(args, cwd=tmp_path, module="liquidlfm.translate")
    assert ref.returncode == 0, ref.stderr
    assert r.stdout == ref.stdout and r.stdout.strip()


@pytest.mark.reference
def test_generate_and_chat(tiny, tiny_chat_dir, tmp_path):
    want = tiny.generate("Hello", 6, temperature=0)
    r = run(["generate", "-m", str(tiny_chat_dir), "-n", "6", "--temperature", "0", "Hello"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == want + "\n"
    want = tiny.chat([{"role": "user", "content": "hi"}], max_tokens=5, temperature=0,
                     session=tiny.session())
    r = run(["chat", "-m", str(tiny_chat_dir), "-n", "5", "--temperature", "0"], cwd=tmp_path, stdin="hi\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == want


def test_scholar_same_as_python_m(shared_dir, tmp_path):
    args = ["cross-lingual named entity recognition", "--corpus", str(shared_dir / "data" / "papers" / "naacl2022.jsonl"),
            "--top-k", "4", "--no-model", "-q"]
    r = run(["scholar", *args], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref = run(args, cwd=tmp_path, module="liquidlfm.scholar")
    assert r.stdout == ref.stdout and "\\cite" not in r.stdout and "[" in r.stdout


@pytest.mark.reference
def test_quantize(tiny_chat_dir, tiny, tmp_path):
    out = tmp_path / "tiny-q8.gguf"
    r = run(["quantize", str(tiny_chat_dir), str(out), "--type", "q8_0", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout
    with lfm.load(str(out)) as q:
        assert q.config.n_vocab == tiny.config.n_vocab and q.config.weight_type == "q8_0"


def test_download(tmp_path):
    from liquidlfm import hub
    from tests.fixtures.hub_server import FakeHub, tiny_gguf_bytes

    data = tiny_gguf_bytes(tmp_path)
    repo, file = hub.DEFAULT_MODELS["chat"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("LIQUIDLFM_MODEL", "HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE", "HF_HOME")}
    with FakeHub({repo: {file: data}}) as srv:
        r = subprocess.run([sys.executable, "-m", "liquidlfm", "download", "--purpose", "chat"],
                           env=dict(env, HF_ENDPOINT=srv.url, LIQUIDLFM_CACHE=str(tmp_path / "cache"),
                                    HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(REPO), LIQUIDLFM_OFFLINE="0"),
                           cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == data


# ---- a source tree without the built extension ----

def test_source_tree_without_extension_says_so(tmp_path):
    """From a checkout's root, Python imports the source folder; without a built _core the error says
    where it imported from and what to run, instead of a 'circular import' message."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "liquidlfm", checkout / "liquidlfm",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -S: no site-packages, so an editable install of another checkout cannot supply its _core (as on a
    # newcomer's machine, only the current directory's source folder is found)
    for cmd in (["-c", "import liquidlfm"], ["-m", "liquidlfm.translate", "--to", "ko", "Hello."],
                ["-m", "liquidlfm", "translate", "--to", "ko", "Hello."]):
        r = subprocess.run([sys.executable, "-S", *cmd], cwd=str(checkout), env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode != 0
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("ImportError: liquidlfm's C extension (liquidlfm._core) is not built"), r.stderr
        assert str(checkout / "liquidlfm") in last
        assert "pip install ." in last and "liquidlfm translate" in last and "build_ext --inplace" in last
        assert "circular import" not in r.stderr
