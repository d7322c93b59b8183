"""Model resolution and download (liquidlfm.hub) against a loopback fake of the Hugging Face Hub."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import liquidlfm
from liquidlfm import hub
from liquidlfm.hub import resolve_model
from tests.fixtures.hub_server import FakeHub, isolate_hub, tiny_gguf_bytes

REPO = Path(__file__).resolve().parents[2]
DEF_REPO, DEF_FILE = hub.DEFAULT_MODELS["translate"]


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment: empty cache in tmp, no model env var, online, no real endpoint."""
    return isolate_hub(monkeypatch, tmp_path)


@pytest.fixture
def gguf_bytes(tmp_path):
    return tiny_gguf_bytes(tmp_path)


def test_explicit_path_file_and_folder(env, tmp_path, gguf_bytes):
    f = tmp_path / "m.gguf"
    f.write_bytes(gguf_bytes)
    assert resolve_model(str(f)) == str(f.resolve())
    assert resolve_model(f) == str(f.resolve())  # PathLike
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text("{}")
    assert resolve_model(str(d)) == str(d.resolve())
    g = tmp_path / "onegguf"
    g.mkdir()
    (g / "x-Q4_0.gguf").write_bytes(gguf_bytes)
    assert resolve_model(str(g)) == str((g / "x-Q4_0.gguf").resolve())
    (g / "x-Q8_0.gguf").write_bytes(gguf_bytes)
    assert resolve_model(str(g)).endswith("x-Q4_0.gguf")  # the default quant wins among several


def test_missing_path_and_bad_specs(env, tmp_path):
    with pytest.raises(liquidlfm.ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"))
    with pytest.raises(liquidlfm.ModelNotFoundError, match="neither an existing path nor"):
        resolve_model("not a repo id")
    with pytest.raises(ValueError, match="purpose"):
        resolve_model(purpose="poetry")
    with pytest.raises(ValueError):
        resolve_model("")
    e = tmp_path / "empty"
    e.mkdir()
    with pytest.raises(liquidlfm.ModelNotFoundError, match="without config.json"):
        resolve_model(str(e))
    # ModelNotFoundError is a FileNotFoundError, so generic handlers catch it too
    assert issubclass(liquidlfm.ModelNotFoundError, FileNotFoundError)


def test_env_var_and_precedence(env, monkeypatch, tmp_path, gguf_bytes):
    a = tmp_path / "a.gguf"
    b = tmp_path / "b.gguf"
    a.write_bytes(gguf_bytes)
    b.write_bytes(gguf_bytes)
    monkeypatch.setenv("LIQUIDLFM_MODEL", str(a))
    assert resolve_model() == str(a.resolve())
    assert resolve_model(str(b)) == str(b.resolve())  # explicit beats the env var
    # the env var beats a cached default model
    env.mkdir(parents=True, exist_ok=True)
    (env / DEF_FILE).write_bytes(gguf_bytes)
    assert resolve_model() == str(a.resolve())
    monkeypatch.setenv("LIQUIDLFM_MODEL", str(tmp_path / "gone.gguf"))
    with pytest.raises(liquidlfm.ModelNotFoundError, match="LIQUIDLFM_MODEL"):
        resolve_model()


def test_cache_before_download_no_network(env, gguf_bytes):
    env.mkdir(parents=True, exist_ok=True)
    (env / DEF_FILE).write_bytes(gguf_bytes)
    with FakeHub({}) as srv:
        os.environ["HF_ENDPOINT"] = srv.url
        assert resolve_model() == str(env / DEF_FILE)
        assert srv.requests == []


def test_default_download_once_then_offline(env, monkeypatch, gguf_bytes, capsys):
    import gguf

    with FakeHub({DEF_REPO: {DEF_FILE: gguf_bytes, "README.md": b"# card\n"}}) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        p1 = resolve_model()
        assert Path(p1).read_bytes() == gguf_bytes
        assert Path(p1).resolve().is_relative_to(env.resolve())  # into the cache folder
        assert srv.downloads(DEF_FILE) == 1
        r = gguf.GGUFReader(p1)
        assert r.fields["general.architecture"].contents() == "lfm2"
        # the progress bar / notice go to stderr, never stdout
        out = capsys.readouterr()
        assert "downloading" in out.err and out.out == ""
        # second call: found in the cache, no request at all
        n = len(srv.requests)
        assert resolve_model() == p1
        assert len(srv.requests) == n
        # offline: still works, from the cache
        monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
        assert resolve_model() == p1
        assert resolve_model(f"{DEF_REPO}:{DEF_FILE}") == p1
        assert resolve_model(DEF_REPO) == p1  # the default quant of a GGUF repo
        assert len(srv.requests) == n
        monkeypatch.delenv("LIQUIDLFM_OFFLINE")
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        assert resolve_model() == p1
    assert srv.downloads(DEF_FILE) == 1


def test_offline_nothing_cached_message(env, monkeypatch):
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    with FakeHub({}) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        with pytest.raises(liquidlfm.ModelNotFoundError) as ei:
            resolve_model()
        assert srv.requests == []
    msg = str(ei.value)
    assert f"python -m liquidlfm.hub download {DEF_REPO}:{DEF_FILE}" in msg
    assert f"hf download {DEF_REPO} {DEF_FILE} --cache-dir {env}" in msg
    assert str(env / DEF_FILE) in msg  # where to place the file by hand
    assert "LIQUIDLFM_MODEL" in msg and "Offline mode is on" in msg
    with pytest.raises(liquidlfm.ModelNotFoundError, match="hf download LiquidAI/Other-GGUF Other-Q4_0.gguf"):
        resolve_model("LiquidAI/Other-GGUF")


def test_unreachable_hub_fails_fast_with_how_to(env):
    import time

    t0 = time.perf_counter()
    with pytest.raises(liquidlfm.ModelNotFoundError) as ei:
        resolve_model()  # HF_ENDPOINT is a closed loopback port (see the env fixture); not offline
    assert time.perf_counter() - t0 < 10  # no minute of retries
    msg = str(ei.value)
    assert "cannot be reached (127.0.0.1:9" in msg and f"python -m liquidlfm.hub download {DEF_REPO}" in msg
    with pytest.raises(liquidlfm.ModelNotFoundError, match="cannot be reached"):
        resolve_model("acme/tiny-hf")  # the snapshot (safetensors) path too


def test_quant_selector_and_listing_fallback(env, monkeypatch, gguf_bytes):
    q8 = gguf_bytes + b"\0" * 32  # distinct content per file
    odd = {"weird-name.q4_0.gguf": gguf_bytes, "weird-name.q8_0.gguf": q8, "config.json": b"{}"}
    repos = {"acme/Tiny-GGUF": {"Tiny-Q4_0.gguf": gguf_bytes, "Tiny-Q8_0.gguf": q8}, "acme/odd-GGUF": odd}
    with FakeHub(repos) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        p = resolve_model("acme/Tiny-GGUF:q8_0")
        assert Path(p).name == "Tiny-Q8_0.gguf" and Path(p).read_bytes() == q8
        assert not any("/api/" in path for _, path in srv.requests)  # conventional name: no listing
        # unconventional names: the conventional guess 404s, then the file list is matched
        p = resolve_model("acme/odd-GGUF:Q8_0")
        assert Path(p).name == "weird-name.q8_0.gguf"
        assert any(path.startswith("/api/models/acme/odd-GGUF/tree") for _, path in srv.requests)
        p = resolve_model("acme/odd-GGUF:*q4_0*")
        assert Path(p).name == "weird-name.q4_0.gguf"
        # offline, patterns and quant names are matched against the cached files
        monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
        n = len(srv.requests)
        assert resolve_model("acme/odd-GGUF:*q4_0*") == p
        assert Path(resolve_model("acme/odd-GGUF:Q8_0")).name == "weird-name.q8_0.gguf"
        assert len(srv.requests) == n
        monkeypatch.delenv("LIQUIDLFM_OFFLINE")
        with pytest.raises(liquidlfm.ModelNotFoundError, match="weird-name.q4_0.gguf"):
            resolve_model("acme/odd-GGUF:Q6_K")  # lists what exists
        with pytest.raises(liquidlfm.ModelNotFoundError, match="has no file 'nope.gguf'"):
            resolve_model("acme/Tiny-GGUF:nope.gguf")
        with pytest.raises(liquidlfm.ModelNotFoundError, match="not found"):
            resolve_model("acme/Missing-GGUF")


def test_revision_and_safetensors_snapshot(env, monkeypatch):
    files = {"config.json": b'{"model_type": "lfm2"}', "model.safetensors": b"\0" * 64,
             "tokenizer.json": b"{}", "README.md": b"card", "big.bin": b"x"}
    with FakeHub({"acme/tiny-hf": files}) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        p = Path(resolve_model("acme/tiny-hf"))
        assert (p / "config.json").read_bytes() == files["config.json"]
        assert (p / "model.safetensors").is_file() and not (p / "big.bin").exists()
        monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
        n = len(srv.requests)
        assert Path(resolve_model("acme/tiny-hf")) == p
        assert len(srv.requests) == n


def test_parse_spec():
    assert hub.parse_spec("a/b") == ("a/b", None, None)
    assert hub.parse_spec("a/b:Q4_K_M@main") == ("a/b", "Q4_K_M", "main")
    assert hub.parse_spec("a/b:f.gguf") == ("a/b", "f.gguf", None)
    with pytest.raises(ValueError):
        hub.parse_spec("a/b@")


def test_cli_download_and_offline_error(env, tmp_path, gguf_bytes):
    with FakeHub({DEF_REPO: {DEF_FILE: gguf_bytes}}) as srv:
        e = dict(os.environ, HF_ENDPOINT=srv.url, PYTHONPATH=str(REPO))
        r = subprocess.run([sys.executable, "-m", "liquidlfm.hub", "download"], env=e, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        path = r.stdout.strip()
        assert Path(path).read_bytes() == gguf_bytes
        e2 = dict(e, LIQUIDLFM_OFFLINE="1")
        r = subprocess.run([sys.executable, "-m", "liquidlfm.hub", "path"], env=e2, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == path
    e3 = dict(os.environ, LIQUIDLFM_OFFLINE="1", LIQUIDLFM_CACHE=str(tmp_path / "empty"), PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "liquidlfm.hub", "path"], env=e3, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "python -m liquidlfm.hub download" in r.stderr
