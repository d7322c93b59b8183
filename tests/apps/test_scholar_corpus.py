"""Corpus loading: BibTeX / JSONL / JSON / CSV / folders, and clear errors for bad corpora."""
import json

import pytest

from liquidlfm.scholar import CorpusError, load_corpus
from liquidlfm.scholar.corpus import latex_to_text, make_key

BIB = r"""
@inproceedings{vaswani2017attention,
  title = {Attention Is All You Need},
  author = {Vaswani, Ashish and Shazeer, Noam and Parmar, Niki},
  booktitle = {Advances in Neural Information Processing Systems},
  year = {2017},
  abstract = {The dominant sequence transduction models are based on complex recurrent networks.}
}
@article{mueller2020,
  title = {{BERT} for {\"U}ber-long Texts: M{\"u}ller's \& Co's approach},
  author = {M{\"u}ller, J{\"o}rg and van der Berg, Anna},
  journal = {TACL},
  year = 2020
}
@string{foo = "bar"}
"""


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def test_bibtex(tmp_path):
    papers = load_corpus(write(tmp_path, "refs.bib", BIB))
    assert [p.key for p in papers] == ["vaswani2017attention", "mueller2020"]
    a, b = papers
    assert a.title == "Attention Is All You Need" and a.year == 2017 and a.authors[1] == "Shazeer, Noam"
    assert a.venue.startswith("Advances") and a.abstract.startswith("The dominant")
    assert b.title == "BERT for Über-long Texts: Müller's & Co's approach"
    assert b.authors == ("Müller, Jörg", "van der Berg, Anna") and b.short_authors() == "Müller and van der Berg"
    assert b.bib["title"].startswith("{BERT}")                     # raw entry kept for the output .bib


def test_jsonl_csv_json_and_folder(tmp_path):
    rec = {"title": "Hybrid Convolution Models", "abstract": "Short convolutions.", "authors": ["Ada Lovelace"],
           "year": 2024, "venue": "ICLR", "id": "x1", "url": "https://u/1"}
    write(tmp_path / "d" if False else tmp_path, "a.jsonl", json.dumps(rec) + "\n\n")
    write(tmp_path, "b.csv", "Title,Abstract,Authors,Year,Venue,URL\n"
                            "\"Linear Attention, Revisited\",\"We revisit it.\",Alan Turing; Grace Hopper,2023,NeurIPS,https://u/2\n")
    write(tmp_path, "c.json", json.dumps({"papers": [dict(rec, title="State Space Models", authors="A B and C D")]}))
    write(tmp_path, "notes.txt", "ignored")
    papers = load_corpus(tmp_path)
    by = {p.title: p for p in papers}
    assert set(by) == {"Hybrid Convolution Models", "Linear Attention, Revisited", "State Space Models"}
    assert by["Linear Attention, Revisited"].authors == ("Alan Turing", "Grace Hopper")
    assert by["State Space Models"].authors == ("A B", "C D")
    assert by["Hybrid Convolution Models"].key == "lovelace2024hybrid"
    assert len({p.key for p in papers}) == 3


def test_shared_corpus_loads(shared_dir):
    papers = load_corpus(shared_dir / "data" / "papers")
    assert len(papers) >= 3900
    assert len({p.key for p in papers}) == len(papers)
    assert all(p.title and p.abstract and p.year for p in papers)


def test_keys_unique_on_collision(tmp_path):
    recs = [{"title": "Alignment Matters", "authors": ["J Zhang"], "year": 2021},
            {"title": "Alignment Matters Again", "authors": ["K Zhang"], "year": 2021},
            {"title": "Alignment Matters", "authors": ["J Zhang"], "year": 2021}]       # exact duplicate
    p = write(tmp_path, "x.jsonl", "\n".join(json.dumps(r) for r in recs))
    papers = load_corpus(p)
    assert [x.key for x in papers] == ["zhang2021alignment", "zhang2021alignmentb"]


def test_make_key_and_latex_text():
    assert make_key(["Josef van Genabith"], 2021, "The A Bidirectional Model") == "genabith2021bidirectional"
    assert make_key([], None, "") == "anon"
    assert latex_to_text(r"Sch{\"o}n \emph{et al.} --- {\ss} \'{e}t\'e \c{c}a") == "Schön et al. –- ß été ça"


# ---- errors ----

@pytest.mark.parametrize("name,content,pattern", [
    ("empty.jsonl", "", r"empty\.jsonl: empty corpus"),
    ("blank.bib", "  \n\n", r"blank\.bib: empty corpus"),
    ("only_header.csv", "title,abstract\n", r"empty corpus"),
    ("bad.jsonl", '{"title": "ok"}\n{"title": "broken",\n', r"bad\.jsonl: line 2: not valid JSON"),
    ("notitle.jsonl", '{"title": "ok"}\n{"abstract": "no title"}\n', r"line 2: record has no title"),
    ("list.jsonl", '["a", "b"]\n', r"line 1: expected an object"),
    ("bad.bib", "@article{a, title={A}}\n\n@misc{b, title = {unclosed\n@article{c, title={C}}\n",
     r"bad\.bib: line 3: malformed BibTeX entry"),
    ("dup.bib", "@article{a, title={A}}\n@article{a, title={B}}\n", r"line 2: .*duplicate entry key 'a'"),
    ("notitle.bib", "@article{k1,\n author={X}}\n", r"line 1 \(entry 'k1'\): entry has no title"),
    ("nocol.csv", "name,abstract\nx,y\n", r"no 'title' column \(found: name, abstract\)"),
    ("ragged.csv", "title,abstract\nA,B\nC,D,E\n", r"line 3: row has more fields"),
    ("bad.json", '[{"title": "x"},]', r"bad\.json: not valid JSON"),
    ("refs.txt", "whatever", r"unknown corpus format '\.txt'"),
])
def test_bad_corpus_errors(tmp_path, name, content, pattern):
    with pytest.raises(CorpusError, match=pattern):
        load_corpus(write(tmp_path, name, content))


def test_non_utf8_names_file_and_byte_offset(tmp_path):
    data = '{"title": "Caf'.encode() + b"\xe9" + b'"}\n'
    p = write(tmp_path, "latin1.jsonl", data)
    with pytest.raises(CorpusError, match=r"latin1\.jsonl: not valid UTF-8 at byte offset 14 \(line 1, byte 0xe9\)"):
        load_corpus(p)
    bib = b"@article{a,\n title={Ecole}}\n@article{b,\n title={\xc9cole}}\n"
    with pytest.raises(CorpusError, match=r"w\.bib: not valid UTF-8 at byte offset 48 \(line 4"):
        load_corpus(write(tmp_path, "w.bib", bib))
    with pytest.raises(CorpusError, match=r"UTF-16"):
        load_corpus(write(tmp_path, "u16.csv", "title\nx\n".encode("utf-16")))


def test_bom_is_accepted(tmp_path):
    p = write(tmp_path, "bom.csv", b"\xef\xbb\xbftitle,abstract\nA paper,text\n")
    assert load_corpus(p)[0].title == "A paper"


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(CorpusError, match=r"corpus not found: .*nope\.bib"):
        load_corpus(tmp_path / "nope.bib")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"empty: folder has no corpus files; expected BibTeX"):
        load_corpus(tmp_path / "empty")
