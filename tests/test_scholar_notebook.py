"""notebooks/scholar.ipynb runs end to end (nbclient) on the shared corpus."""
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def test_notebook_runs(shared_dir):
    nb = nbformat.read(REPO / "notebooks" / "scholar.ipynb", as_version=4)
    os.environ.setdefault("LIQUIDLFM_SHARED", str(shared_dir))
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "recall@10 BM25" in out and "cited /" in out and "## Related Work" in out
