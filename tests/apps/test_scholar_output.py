"""Output: the CLI (--out writes the draft and the .bib atomically), the LaTeX compiles as a fragment
with pdflatex + bibtex (Debian: texlive-latex-base; the test FAILS without it), the .bib parses with
bibtexparser and holds exactly the cited papers, Markdown references match the citations."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bibtexparser
import pytest

from liquidlfm.scholar import draft_related_work, load_corpus
from liquidlfm.scholar.render import atomic_write, tex_escape
from tests.fixtures.scholar_fakes import ScriptedGenerator

REPO = Path(__file__).resolve().parents[2]

NASTY_BIB = r"""
@inproceedings{lovelace2024hybrid,
  title = {Hybrid {Conv}-Attention Models: 50\% Faster \& Smaller on \$5 Devices},
  author = {Lovelace, Ada and M{\"u}ller, J{\"o}rg},
  booktitle = {Proceedings of ACL},
  year = {2024},
  abstract = {We mix gated short convolutions with attention layers for on_device inference; speed #1.}
}
@article{turing2023attention,
  title = {Attention Layers for Edge Inference},
  author = {Turing, Alan},
  journal = {TACL},
  year = 2023,
  abstract = {Attention for edge inference with linear layers and hybrid models.}
}
@misc{hopper2022conv,
  title = {Short Convolutions in Language Models},
  author = {Hopper, Grace and {\v{S}}imek, Ji{\v{r}}{\'\i}},
  year = {2022},
  note = {arXiv preprint},
  abstract = {Short convolutions replace attention in language models for speed.}
}
"""

IDEA = "hybrid convolution attention language models for on-device inference"


def need_tex():
    missing = [t for t in ("pdflatex", "bibtex") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install Debian's texlive-latex-base "
                    f"(apt-get install -y --no-install-recommends texlive-latex-base)")


def compile_fragment(tmp: Path, tex_name: str, bib_name: str) -> str:
    """Wrap the fragment in a minimal document, run pdflatex, bibtex, pdflatex x2; return the log."""
    need_tex()
    main = tmp / "main.tex"
    main.write_text("\\documentclass{article}\n\\begin{document}\n"
                    f"\\input{{{Path(tex_name).stem}}}\n"
                    "\\bibliographystyle{plain}\n"
                    f"\\bibliography{{{Path(bib_name).stem}}}\n\\end{{document}}\n")
    def run(*cmd):
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=180)
        return r
    r = run("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex")
    assert r.returncode == 0, r.stdout[-3000:]
    b = run("bibtex", "main")
    assert b.returncode in (0, 1), b.stdout          # 1 = warnings only
    assert "error message" not in b.stdout, b.stdout
    for _ in range(2):
        r = run("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex")
        assert r.returncode == 0, r.stdout[-3000:]
    log = (tmp / "main.log").read_text(errors="replace")
    assert "undefined" not in log.lower() or "Citation" not in log, log[-2000:]
    assert (tmp / "main.pdf").stat().st_size > 1000
    return log


def bib_keys(path: Path) -> list:
    lib = bibtexparser.parse_string(path.read_text(encoding="utf-8"))
    assert not lib.failed_blocks, [b.raw for b in lib.failed_blocks]
    return [e.key for e in lib.entries]


def test_cli_latex_out_writes_tex_and_bib_that_compile(tmp_path):
    bib = tmp_path / "refs.bib"
    bib.write_text(NASTY_BIB, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", IDEA, "--corpus", str(bib), "--top-k", "12",
                        "--format", "latex", "--out", "related.tex", "--no-model", "--explain"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""                                   # draft went to the file
    assert "[scholar" in r.stderr and "BM25" in r.stderr and "matched:" in r.stderr   # progress, --explain
    tex = (tmp_path / "related.tex").read_text()
    cited = [k for m in re.finditer(r"\\cite\{([^}]*)\}", tex) for k in m.group(1).split(",")]
    assert sorted(set(cited)) == sorted(bib_keys(tmp_path / "related.bib"))
    assert set(cited) == {"lovelace2024hybrid", "turing2023attention", "hopper2022conv"}
    # the user's own entries are reproduced (raw fields kept)
    assert r"M{\"u}ller" in (tmp_path / "related.bib").read_text()
    assert not list(tmp_path.glob(".related*"))             # no temp files left
    log = compile_fragment(tmp_path, "related.tex", "related.bib")
    assert "Citation" not in log or "undefined" not in log


def test_model_draft_with_hostile_text_compiles(tmp_path, shared_dir):
    papers = load_corpus(shared_dir / "data" / "papers" / "naacl2022.jsonl")
    hostile = ("Prior work [P1] uses 100% of $budget & more_tokens #1 {braces} ~tilde ^caret \\backslash "
               "“quotes” — dashes… naïve café Œuvre ß α-β 中文 🙂 <tags> | pipes [P2, P99] (Smith et al., 2020). "
               "See \\cite{P3} and [P3].")
    gen = ScriptedGenerator(paragraph=hostile, themes=lambda p, keys: "Efficient models: " + ", ".join(keys))
    d = draft_related_work("efficient transformer inference with quantization and pruning", papers=papers,
                           model=gen, top_k=12, format="latex", rerank=False, expand=False)
    out, bibp = d.save(tmp_path / "rw.tex")
    assert bibp == tmp_path / "rw.bib"
    assert sorted(bib_keys(bibp)) == sorted(d.cited)
    tex = out.read_text()
    assert "P99" not in tex and "Smith" not in tex
    compile_fragment(tmp_path, "rw.tex", "rw.bib")


def test_markdown_output_and_bib_next_to_it(tmp_path, shared_dir):
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "cross-lingual transfer for low-resource NER",
                        "--corpus", str(shared_dir / "data" / "papers" / "acl2022.jsonl"), "--top-k", "6",
                        "--no-model", "--out", str(tmp_path / "rw.md"), "-q"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""                                   # -q
    md = (tmp_path / "rw.md").read_text()
    assert md.startswith("## Related Work") and "### References" in md
    cited = set(re.findall(r"\(#ref-([^)]+)\)", md))
    listed = set(re.findall(r'<a id="ref-([^"]+)"></a>', md))
    assert cited == listed == set(bib_keys(tmp_path / "rw.bib")) and len(cited) == 6
    assert "https://aclanthology.org/" in md


def test_cli_stdout_and_bib_flag(tmp_path, shared_dir):
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "dialogue state tracking",
                        "--corpus", str(shared_dir / "data" / "papers" / "naacl2022.jsonl"), "--top-k", "3",
                        "--no-model", "--format", "latex", "--bib", str(tmp_path / "x.bib")],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("% Related work drafted by liquidlfm.scholar")
    cited = {k for m in re.finditer(r"\\cite\{([^}]*)\}", r.stdout) for k in m.group(1).split(",")}
    assert cited == set(bib_keys(tmp_path / "x.bib"))


def test_cli_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "a"}\n{oops\n')
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "x", "--corpus", str(bad), "--no-model"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1 and "bad.jsonl: line 2: not valid JSON" in r.stderr and r.stdout == ""
    good = tmp_path / "good.jsonl"
    good.write_text('{"title": "A paper about x", "abstract": "x y z"}\n')
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "x", "--corpus", str(good),
                        "--model", str(tmp_path / "no-such-model")], capture_output=True, text=True,
                       timeout=120, env=dict(env, HF_HUB_OFFLINE="1"))
    assert r.returncode == 2 and "could not load the model" in r.stderr and "--no-model" in r.stderr


def test_atomic_write_never_leaves_partial_files(tmp_path, monkeypatch):
    p = tmp_path / "out.tex"
    atomic_write(p, "old complete content\n")

    def boom(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, "new content that must not appear half-written\n" * 1000)
    assert p.read_text() == "old complete content\n"
    assert [x.name for x in tmp_path.iterdir()] == ["out.tex"]


def test_tex_escape():
    assert tex_escape("50% & $5 #1 a_b {x} ~ ^ \\") == \
        r"50\% \& \$5 \#1 a\_b \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{}"
    assert tex_escape("café naïve Š") == r"caf{\'{e}} na{\"{\i}}ve {\v{S}}"
    assert tex_escape("“a” — b…") == "``a'' --- b\\ldots{}"
    assert tex_escape("中🙂") == "??"
    assert tex_escape("Łukasz Kędzia Nguyễn") == r"{\L}ukasz Kedzia Nguy{\~{\^{e}}}n"   # OT1 has no ogonek


def test_whole_shared_corpus_bib_compiles(tmp_path, shared_dir):
    """Every paper of the shared corpus as a .bib entry, \\nocite{*}: pdflatex + bibtex accept all
    names and titles (found: ogonek \\k is T1-only and broke OT1 documents)."""
    from liquidlfm.scholar.render import to_bibtex
    need_tex()
    papers = load_corpus(shared_dir / "data" / "papers")
    (tmp_path / "all.bib").write_text(to_bibtex(papers), encoding="utf-8")
    assert len(bib_keys(tmp_path / "all.bib")) == len(papers)
    (tmp_path / "frag.tex").write_text("\\nocite{*}\n")
    compile_fragment(tmp_path, "frag.tex", "all.bib")
    assert (tmp_path / "main.bbl").read_text(errors="replace").count("\\bibitem") == len(papers)
