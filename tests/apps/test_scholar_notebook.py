"""notebooks/scholar.ipynb runs end to end (nbclient) on the shared corpus.

Beyond running, its results are checked as values: a cell appended to the executed copy dumps them
as JSON, and the test recomputes the retrieval numbers in this process and checks the draft's
structure (citations drawn from the retrieved papers, .bib and LaTeX keys equal to the citations)."""
import os
import re

import pytest

from liquidlfm.scholar import Index, load_corpus, retrieve
from liquidlfm.scholar.evalpairs import make_pairs
from liquidlfm.scholar.retrieve import recall_at_k
from tests.fixtures.notebooks import MARK, run_notebook

pytestmark = pytest.mark.reference  # the notebook builds its model with transformers

DUMP = f"""
import json as _json
print({MARK!r} + _json.dumps(dict(
    n_papers=len(papers), idea=idea, hits=[h.paper.key for h in r.hits], explain=r.explain(),
    pairs=[list(p) for p in pairs],
    cited=list(draft.cited), retrieved=[p.key for p in draft.retrieved], themes=[t.name for t in draft.themes],
    themes_by=draft.themes_by, markdown=draft.markdown(), latex=draft.latex(), bibtex=draft.bibtex(),
    plain_cited=list(plain.cited), plain_retrieved=[p.key for p in plain.retrieved], plain_markdown=plain.markdown(),
)))
"""


def test_notebook_runs(shared_dir, monkeypatch):
    monkeypatch.setenv("LIQUIDLFM_SHARED", str(shared_dir))
    monkeypatch.delenv("LIQUIDLFM_MODEL", raising=False)
    outputs, res = run_notebook("scholar.ipynb", DUMP)
    text = "".join("".join(o) for o in outputs)
    assert "## Related Work" in text

    papers = load_corpus(shared_dir / "data" / "papers")
    index = Index(papers)
    assert res["n_papers"] == len(papers) and f"{len(papers)} papers indexed" in text
    # retrieval: the same hits here, explained in the notebook
    r = retrieve(res["idea"], index=index, top_k=8)
    assert res["hits"] == [h.paper.key for h in r.hits] and len(res["hits"]) == 8
    assert res["explain"] == r.explain() and res["explain"] in text
    # the recall table: the numbers the notebook printed, recomputed
    pairs, held_out = make_pairs(papers, n=60, seed=0, held_out=True)
    assert res["pairs"] == [list(p) for p in pairs]
    ho = Index(held_out)
    for label, kw in [("BM25", dict(expand=False)), ("BM25 + expansion", dict(expand=True))]:
        want = f"recall@10 {label:18s} {recall_at_k(pairs, ho, 10, **kw):.2f}"
        assert want in text, (want, text)
    assert f"recall@30 (rerank pool)   {recall_at_k(pairs, ho, 30):.2f}" in text
    # the model draft (random weights: structure only): 8 papers retrieved (reranked from 10
    # candidates), every citation among them, the .bib and the LaTeX cite exactly the cited keys
    assert len(set(res["retrieved"])) == 8 and set(res["retrieved"]) <= {p.key for p in papers}
    assert res["cited"] and set(res["cited"]) <= set(res["retrieved"])
    bib_keys = re.findall(r"@\w+\{([^,]+),", res["bibtex"])
    tex_keys = {k for m in re.finditer(r"\\cite\{([^}]*)\}", res["latex"]) for k in m.group(1).split(",")}
    assert sorted(bib_keys) == sorted(res["cited"]) and tex_keys == set(res["cited"])
    assert f"{len(res['cited'])} cited / {len(res['retrieved'])} retrieved" in text
    assert res["markdown"].startswith("## Related Work") and res["markdown"] in text
    for name in res["themes"]:
        assert name in res["markdown"]
    # the model-free draft: built from metadata, citing only what it retrieved (6 papers)
    assert len(res["plain_retrieved"]) == 6 and res["plain_cited"]
    assert set(res["plain_cited"]) <= set(res["plain_retrieved"])
    assert res["plain_markdown"].startswith("## Related Work") and res["plain_markdown"] in text
    assert os.environ.get("LIQUIDLFM_MODEL") is None
