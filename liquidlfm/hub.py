"""Find a model on disk, or download it once from the Hugging Face Hub.

    resolve_model(spec=None, *, purpose="translate") -> str      # a local .gguf file or HF model folder

Resolution order (first hit wins):

1. ``spec`` is an existing path (a ``.gguf`` file or a folder with ``config.json``) → used as is.
2. ``spec`` is a Hub repo id: ``"owner/name"``, optionally ``"owner/name:FILE.gguf"``,
   ``"owner/name:Q4_K_M"`` (a quant of a GGUF repo), ``"owner/name:*Q8_0*.gguf"`` (a pattern) and
   ``"@revision"`` at the end. A copy already in the cache is used without touching the network;
   otherwise the file is downloaded (unless offline).
3. The ``LIQUIDLFM_MODEL`` environment variable (a path or a repo id, same syntax).
4. The cache: the default model for ``purpose`` (see below) if it is already in the cache folder,
   either as a loose file ``<cache>/<filename>`` or in the huggingface_hub cache layout.
5. The default model, downloaded once with ``huggingface_hub.hf_hub_download`` (tqdm progress bar on
   stderr), into the cache; later calls find it in step 4 and work offline. When it cannot be
   downloaded (offline, or the hub unreachable), another purpose's default model already in the cache
   is used instead, with a note on stderr.

Offline (``LIQUIDLFM_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) with nothing cached raises
:class:`liquidlfm.ModelNotFoundError` whose message gives the exact commands to get a model.

**Cache folder.** ``$LIQUIDLFM_CACHE`` if set, else huggingface_hub's own cache (``$HF_HUB_CACHE``,
else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``). Sharing the huggingface_hub cache means a
file fetched by ``hf download``/transformers is found without a second download, and the usual HF
tools (``hf cache ls``/``hf cache rm``) manage it. ``HF_ENDPOINT`` is honoured (read at call time).

**Default models** (why): Korean<->English translation (``purpose="translate"``) uses
**gyung/lfm2-1.2b-koen-mt-v8-rl-10k-merged-GGUF, lfm2-1.2b-koen-mt-v8-rl-10k-merged-Q8_0.gguf** (1.25 GB),
the English<->Korean fine-tune of LFM2-1.2B from the project the translator comes from, in the quant
that project recommends (published FLORES-200 devtest en->ko chrF 34.39 vs 27.23 for the base
LFM2-1.2B; the registry and the smaller quants: liquidlfm.translate.models). The translator's other
language pairs and its fast option (``purpose="translate-general"``) use **LiquidAI/LFM2-350M-GGUF,
LFM2-350M-Q4_0.gguf** — a ~230 MB download that runs in real time on a laptop CPU or phone; Liquid's own
translation model (LFM2-350M-ENJP-MT) is this size, and Q4_0 is the simplest, fastest 4-bit format in
every CPU backend. Where quality matters more than size (chat), ``purpose="chat"`` picks **LiquidAI/LFM2.5-1.2B-Instruct-GGUF, Q4_K_M** (28T training tokens vs 10T,
instruction-tuned, ~3.4x the parameters and ~3x slower per token; K-quants keep more quality per bit).
The LFM2.5 file name follows Liquid's ``<model>-<QUANT>.gguf`` convention used in LFM2-350M-GGUF; if a
repo names its files differently, the file list is fetched and matched instead.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import ModelNotFoundError

__all__ = ["resolve_model", "cache_dir", "is_offline", "DEFAULT_MODELS", "parse_spec", "download"]

DEFAULT_MODELS = {
    # Korean<->English: the KoEn fine-tune of LFM2-1.2B (liquidlfm.translate.models says why)
    "translate": ("gyung/lfm2-1.2b-koen-mt-v8-rl-10k-merged-GGUF", "lfm2-1.2b-koen-mt-v8-rl-10k-merged-Q8_0.gguf"),
    # the translator's other pairs and its fast option
    "translate-general": ("LiquidAI/LFM2-350M-GGUF", "LFM2-350M-Q4_0.gguf"),
    "chat": ("LiquidAI/LFM2.5-1.2B-Instruct-GGUF", "LFM2.5-1.2B-Instruct-Q4_K_M.gguf"),
}
DEFAULT_QUANT = "Q4_0"
_QUANT_RE = re.compile(r"^(?:I?Q\d(?:_[A-Z0-9]+)*|F16|F32|BF16)(?:-[A-Za-z0-9-]+)?$", re.IGNORECASE)
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True if LIQUIDLFM_OFFLINE or HF_HUB_OFFLINE is set to 1/true/yes/on (read at call time)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("LIQUIDLFM_OFFLINE", "HF_HUB_OFFLINE"))


def cache_dir() -> Path:
    """The folder models are downloaded to and looked up in (see the module docstring)."""
    if os.environ.get("LIQUIDLFM_CACHE"):
        return Path(os.environ["LIQUIDLFM_CACHE"]).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _endpoint() -> Optional[str]:
    ep = os.environ.get("HF_ENDPOINT")
    return ep.rstrip("/") if ep else None


# ---- spec parsing ----

def parse_spec(spec: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``"owner/name[:selector][@revision]"`` → (repo_id, selector or None, revision or None).
    Raises ValueError if ``spec`` is not a repo id."""
    s = spec.strip()
    revision = None
    if "@" in s:
        s, revision = s.rsplit("@", 1)
        if not revision:
            raise ValueError(f"empty revision in model spec {spec!r}")
    selector = None
    if ":" in s:
        s, selector = s.split(":", 1)
        selector = selector or None
    if not _REPO_RE.match(s):
        raise ValueError(f"{spec!r} is neither an existing path nor a Hugging Face repo id ('owner/name')")
    return s, selector, revision


def _looks_like_path(spec: str) -> bool:
    return (spec.startswith(("/", "./", "../", "~", "\\")) or spec.endswith((".gguf", ".safetensors"))
            or os.sep in spec.strip("/").replace("/", "", 1) or (len(spec) > 1 and spec[1] == ":"))


def _is_gguf_repo(repo_id: str) -> bool:
    return "gguf" in repo_id.lower()


def _conventional_filename(repo_id: str, quant: str) -> str:
    name = repo_id.split("/", 1)[1]
    name = re.sub(r"[-_]GGUF$", "", name, flags=re.IGNORECASE)
    return f"{name}-{quant.upper() if not quant.lower().endswith('optimized') else quant}.gguf"


# ---- cache lookups (never touch the network) ----

def _find_cached(repo_id: str, filename: str, revision: Optional[str]) -> Optional[str]:
    """A cached copy of repo_id/filename: a file placed loose in the cache folder (what the offline
    message tells people to do), else the hub's own cache. None if neither has it."""
    loose = cache_dir() / filename
    if loose.is_file():
        return str(loose)
    return _cached_file(repo_id, filename, revision)


def _cached_file(repo_id: str, filename: str, revision: Optional[str]) -> Optional[str]:
    from huggingface_hub import try_to_load_from_cache

    got = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_dir()), revision=revision)
    if isinstance(got, str) and os.path.isfile(got):
        return got
    return None


def _cached_files(repo_id: str) -> List[Path]:
    """Every file of repo_id present in the hub-layout cache (all snapshots)."""
    folder = cache_dir() / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*/**/*") if p.is_file() or p.is_symlink())


def _match_files(names: List[str], selector: Optional[str]) -> List[str]:
    ggufs = [n for n in names if n.lower().endswith(".gguf")]
    if selector is None:
        sel = f"*{DEFAULT_QUANT}.gguf"
    elif any(c in selector for c in "*?["):
        sel = selector
    elif _QUANT_RE.match(selector):
        sel = f"*{selector}.gguf"
    else:
        sel = selector
    return sorted(n for n in ggufs if fnmatch.fnmatch(n.lower(), sel.lower()))


# ---- messages ----

def _how_to_get(repo_id: str, filename: Optional[str], why: str) -> str:
    cdir = cache_dir()
    fname = filename or "<file>.gguf"
    spec = repo_id + (f":{filename}" if filename else "")
    cache_flag = f" --cache-dir {cdir}" if os.environ.get("LIQUIDLFM_CACHE") else ""
    lines = [
        why,
        "To get the model, on a machine with internet access run one of:",
        f"    liquidlfm download {spec}    (= python -m liquidlfm.hub download {spec})",
        f"    hf download {repo_id} {fname}{cache_flag}",
        f"(or: huggingface-cli download {repo_id} {fname}{cache_flag})",
        f"or download https://huggingface.co/{repo_id}/resolve/main/{fname} and place the file at",
        f"    {cdir / fname}",
        "or point LIQUIDLFM_MODEL at any LFM2 .gguf file or HF model folder:",
        "    export LIQUIDLFM_MODEL=/path/to/model.gguf",
        "or pass model='/path/to/model.gguf' (Python) / --model /path/to/model.gguf (command line).",
    ]
    if is_offline():
        lines.append("Offline mode is on (LIQUIDLFM_OFFLINE / HF_HUB_OFFLINE), so nothing was downloaded.")
    return "\n".join(lines)


# ---- resolution ----

def _resolve_repo(repo_id: str, selector: Optional[str], revision: Optional[str], *,
                  force_download: bool = False) -> str:
    offline = is_offline()
    if selector is None and repo_id == DEFAULT_MODELS["translate"][0]:
        selector = DEFAULT_MODELS["translate"][1]  # the KoEn repo has no Q4_0: its default is its Q8_0 file
    gguf = _is_gguf_repo(repo_id) or selector is not None
    if not gguf:
        return _resolve_snapshot(repo_id, revision, offline=offline, force_download=force_download)

    pattern = selector is not None and any(c in selector for c in "*?[")
    explicit = selector is not None and not pattern and selector.lower().endswith(".gguf")
    if explicit:
        filename = selector
    elif not pattern:
        filename = _conventional_filename(repo_id, selector or DEFAULT_QUANT)
    else:
        filename = None

    # 1. the cache (no network)
    if not force_download:
        if filename:
            hit = _find_cached(repo_id, filename, revision)
            if hit:
                return hit
        cached = _cached_files(repo_id)
        rels = {p.name: p for p in cached}
        matches = _match_files(list(rels), selector if not explicit else selector)
        if matches and not explicit:
            return str(rels[matches[0]])

    if offline:
        raise ModelNotFoundError(_how_to_get(repo_id, filename,
                                             f"Model {repo_id}" + (f" ({filename})" if filename else "")
                                             + f" is not in the cache ({cache_dir()}) and downloads are off."))
    # 2. download (fail fast with the how-to message when the hub cannot be reached at all)
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError, RepositoryNotFoundError

    unreachable = _unreachable()
    if unreachable:
        raise ModelNotFoundError(_how_to_get(repo_id, filename, f"Model {repo_id}" + (f" ({filename})" if filename
                                             else "") + f" is not in the cache ({cache_dir()}) and the Hugging Face "
                                             f"Hub cannot be reached ({unreachable})."))

    names = None
    if filename is None:
        names = _list_repo_files(repo_id, revision)
        matches = _match_files(names, selector)
        if not matches:
            raise ModelNotFoundError(f"no .gguf file in {repo_id} matches {selector!r}; GGUF files there: "
                                     + ", ".join(n for n in names if n.lower().endswith(".gguf")))
        filename = matches[0]
    try:
        return _download(repo_id, filename, revision, force_download)
    except LocalEntryNotFoundError as e:  # the connection failed during the download
        raise ModelNotFoundError(_how_to_get(repo_id, filename, f"Downloading {repo_id}/{filename} failed: {e}")) \
            from None
    except RemoteEntryNotFoundError:
        if explicit:
            raise ModelNotFoundError(f"{repo_id} has no file {filename!r}") from None
        names = _list_repo_files(repo_id, revision)
        matches = _match_files(names, selector)
        if not matches:
            ggufs = [n for n in names if n.lower().endswith(".gguf")]
            raise ModelNotFoundError(f"{repo_id} has no {selector or DEFAULT_QUANT} GGUF file; GGUF files there: "
                                     + (", ".join(ggufs) or "none")) from None
        return _download(repo_id, matches[0], revision, force_download)
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"repository {repo_id!r} was not found on {_endpoint() or 'huggingface.co'}"
                                 " (or it is gated/private: log in with `hf auth login`)") from None
    except OSError as e:  # connection problems surface as OSError subclasses (httpx errors are wrapped)
        raise ModelNotFoundError(_how_to_get(repo_id, filename, f"Downloading {repo_id}/{filename} failed: {e}")) \
            from e


def _unreachable(timeout: float = 5.0) -> Optional[str]:
    """None if a TCP connection to the hub endpoint opens, else the reason (DNS failure, refused, ...)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                       "all_proxy")):
        return None  # behind a proxy a direct probe proves nothing; let huggingface_hub try
    u = urlsplit(_endpoint() or "https://huggingface.co")
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout).close()
    except OSError as e:
        return f"{u.hostname}:{port}: {e.strerror or e}"
    return None


def _download(repo_id: str, filename: str, revision: Optional[str], force_download: bool) -> str:
    from huggingface_hub import hf_hub_download

    print(f"liquidlfm: downloading {repo_id}/{filename} into {cache_dir()} (once; cached afterwards)",
          file=sys.stderr)
    return hf_hub_download(repo_id, filename, revision=revision, cache_dir=str(cache_dir()),
                           endpoint=_endpoint(), force_download=force_download)


def _list_repo_files(repo_id: str, revision: Optional[str]) -> List[str]:
    from huggingface_hub import HfApi

    return list(HfApi(endpoint=_endpoint()).list_repo_files(repo_id, revision=revision))


_SNAPSHOT_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]


def _resolve_snapshot(repo_id: str, revision: Optional[str], *, offline: bool, force_download: bool) -> str:
    """A safetensors repo: the folder with config.json, weights and tokenizer files."""
    from huggingface_hub import snapshot_download

    if not force_download:
        try:
            path = snapshot_download(repo_id, revision=revision, cache_dir=str(cache_dir()),
                                     allow_patterns=_SNAPSHOT_PATTERNS, local_files_only=True)
            if os.path.isfile(os.path.join(path, "config.json")):
                return path
        except Exception:  # not cached (huggingface_hub raises several types here)
            pass
    if offline:
        raise ModelNotFoundError(_how_to_get(repo_id, None, f"Model {repo_id} is not in the cache ({cache_dir()})"
                                             " and downloads are off."))
    unreachable = _unreachable()
    if unreachable:
        raise ModelNotFoundError(_how_to_get(repo_id, None, f"Model {repo_id} is not in the cache ({cache_dir()}) "
                                             f"and the Hugging Face Hub cannot be reached ({unreachable})."))
    try:
        return snapshot_download(repo_id, revision=revision, cache_dir=str(cache_dir()), endpoint=_endpoint(),
                                 allow_patterns=_SNAPSHOT_PATTERNS, force_download=force_download)
    except OSError as e:
        raise ModelNotFoundError(_how_to_get(repo_id, None, f"Downloading {repo_id} failed: {e}")) from e


def _resolve_spec(spec: str, *, force_download: bool = False) -> str:
    p = Path(spec).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").is_file():
            ggufs = sorted(p.glob("*.gguf"))
            if len(ggufs) == 1:
                return str(ggufs[0].resolve())
            if not ggufs:
                raise ModelNotFoundError(f"{p} is a folder without config.json or .gguf files")
            q = [g for g in ggufs if DEFAULT_QUANT.lower() in g.name.lower()]
            if q:
                return str(q[0].resolve())
            raise ModelNotFoundError(f"{p} holds several .gguf files; pass one: "
                                     + ", ".join(g.name for g in ggufs))
        return str(p.resolve())
    try:
        repo_id, selector, revision = parse_spec(spec)
    except ValueError as e:
        if _looks_like_path(spec):
            raise ModelNotFoundError(f"model file {spec!r} does not exist") from None
        raise ModelNotFoundError(str(e)) from None
    if selector is None and spec.endswith((".gguf", ".safetensors")):
        raise ModelNotFoundError(f"model file {spec!r} does not exist")
    return _resolve_repo(repo_id, selector, revision, force_download=force_download)


def resolve_model(spec: Optional[str] = None, *, purpose: str = "translate") -> str:
    """Return a local path (a .gguf file or an HF model folder) for ``spec``; see the module docstring for
    the order. ``purpose`` ("translate": Korean<->English, "translate-general": the translator's other pairs,
or "chat") picks the default model when nothing is given."""
    if purpose not in DEFAULT_MODELS:
        raise ValueError(f"purpose must be one of {sorted(DEFAULT_MODELS)}, got {purpose!r}")
    if spec is not None:
        if isinstance(spec, os.PathLike):
            spec = os.fspath(spec)
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"model must be a path or a repo id, got {spec!r}")
        return _resolve_spec(spec)
    env = os.environ.get("LIQUIDLFM_MODEL", "").strip()
    if env:
        try:
            return _resolve_spec(env)
        except ModelNotFoundError as e:
            raise ModelNotFoundError(f"LIQUIDLFM_MODEL={env!r}: {e}") from None
    repo_id, filename = DEFAULT_MODELS[purpose]
    hit = _find_cached(repo_id, filename, None)
    if hit:
        return hit
    # this purpose's default is downloaded when it can be; without network another default model
    # already in the cache is used instead (offline fallback)
    why = "downloads are off" if is_offline() else _unreachable()
    if not why:
        return _resolve_repo(repo_id, filename, None)
    for rid, fn in (v for k, v in DEFAULT_MODELS.items() if k != purpose):
        hit = _find_cached(rid, fn, None)
        if hit:
            print(f"liquidlfm: {repo_id} ({filename}) is not cached and cannot be downloaded ({why}); "
                  f"using the cached {rid} ({fn})", file=sys.stderr)
            return hit
    if is_offline():
        raise ModelNotFoundError(_how_to_get(repo_id, filename,
                                             f"No model found: none given, LIQUIDLFM_MODEL unset, and the default "
                                             f"model {repo_id} ({filename}) is not in the cache ({cache_dir()})."))
    return _resolve_repo(repo_id, filename, None)  # unreachable: raises the how-to message


def download(spec: Optional[str] = None, *, purpose: str = "translate", force: bool = False) -> str:
    """Download (or find in the cache) a model and return its local path."""
    if spec is None:
        repo_id, filename = DEFAULT_MODELS[purpose]
        spec = f"{repo_id}:{filename}"
    return _resolve_spec(spec, force_download=force)


def main(argv: Optional[List[str]] = None, prog: str = "python -m liquidlfm.hub") -> int:
    ap = argparse.ArgumentParser(prog=prog,
                                 description="Find or download liquidlfm models (Hugging Face Hub cache).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="download a model (default: the translation model) and print its path")
    d.add_argument("spec", nargs="?", help="repo id[:file|:QUANT][@revision]; default: the purpose's default model")
    d.add_argument("--purpose", choices=sorted(DEFAULT_MODELS), default="translate")
    d.add_argument("--force", action="store_true", help="download again even if cached")
    w = sub.add_parser("path", help="print the path resolve_model() would use (downloads if needed and allowed)")
    w.add_argument("spec", nargs="?")
    w.add_argument("--purpose", choices=sorted(DEFAULT_MODELS), default="translate")
    sub.add_parser("defaults", help="print the default models and the cache folder")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "download":
            print(download(a.spec, purpose=a.purpose, force=a.force))
        elif a.cmd == "path":
            print(resolve_model(a.spec, purpose=a.purpose))
        else:
            for k, (r, f) in DEFAULT_MODELS.items():
                print(f"{k}: {r}:{f}")
            print(f"cache: {cache_dir()}")
    except ModelNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
