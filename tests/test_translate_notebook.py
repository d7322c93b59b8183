"""notebooks/translate.ipynb runs top to bottom (nbclient). Offline with an empty cache it builds a tiny
random-weight LFM2 itself and says so; it never touches the network here."""
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def test_translate_notebook_executes(tmp_path, monkeypatch, shared_dir):
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    monkeypatch.setenv("LIQUIDLFM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LIQUIDLFM_MODEL", raising=False)
    monkeypatch.setenv("LIQUIDLFM_SHARED", str(shared_dir))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(REPO / "notebooks" / "translate.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
                   ).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "RANDOM WEIGHTS: outputs below are meaningless" in text
    assert "joined == non-streamed: True" in text
    assert "exit 0" in text
    assert "unknown language 'klingon'" in text
    assert "<|im_start|>system\\nTranslate to Korean.<|im_end|>" in text
