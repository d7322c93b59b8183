"""Online clients against a loopback HTTP server replaying recorded-style responses (never the network):
retries with backoff on 429/500/503, Retry-After, rate limiting, the on-disk cache, unreachable hosts,
and the "no corpus and offline" message."""
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from liquidlfm.scholar import NoCorpusError, OnlineSearchError, draft_related_work
from liquidlfm.scholar.online import Arxiv, DiskCache, RateLimiter, SemanticScholar, search_online

REPO = Path(__file__).resolve().parents[2]

S2_BODY = {
    "total": 2, "offset": 0,
    "data": [
        {"paperId": "a1b2", "title": "Hybrid Convolution-Attention Language Models for Edge Devices",
         "abstract": "We combine short gated convolutions with a few attention layers for fast on-device inference.",
         "authors": [{"authorId": "1", "name": "Ada Lovelace"}, {"authorId": "2", "name": "Alan Turing"}],
         "year": 2025, "venue": "ICLR", "externalIds": {"ArXiv": "2501.00001", "DOI": "10.1/abc"},
         "url": "https://www.semanticscholar.org/paper/a1b2"},
        {"paperId": "c3d4", "title": "Quantized Inference of Small Language Models on CPUs",
         "abstract": None, "authors": [{"name": "Grace Hopper"}], "year": 2024, "venue": "",
         "externalIds": {}, "url": "https://www.semanticscholar.org/paper/c3d4"},
        {"paperId": "e5", "title": None, "abstract": "skipped: no title", "authors": [], "year": None},
    ],
}

ATOM = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns:arxiv="http://arxiv.org/schemas/atom">
  <id>https://arxiv.org/api/replayed</id>
  <title>arXiv Query: replayed</title>
  <updated>2025-06-01T00:00:00Z</updated>
  <opensearch:totalResults>2</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
  <opensearch:itemsPerPage>2</opensearch:itemsPerPage>
  <entry>
    <id>http://arxiv.org/abs/2502.01234v2</id>
    <updated>2025-02-10T10:00:00Z</updated>
    <published>2025-02-03T12:00:00Z</published>
    <title>Short Convolutions Are
      All You Need for On-Device Language Models</title>
    <summary>We study gated short convolutions as a replacement for most attention layers in on-device
      language models and measure latency on laptop CPUs.</summary>
    <author><name>Émilie du Châtelet</name></author>
    <author><name>Sophie Germain</name></author>
    <link href="http://arxiv.org/abs/2502.01234v2" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2502.01234v2" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/2410.00042v1</id>
    <updated>2024-10-01T09:00:00Z</updated>
    <published>2024-10-01T09:00:00Z</published>
    <title>A Survey of Efficient Attention for Edge Inference</title>
    <summary>Linear, sparse and hybrid attention variants for edge hardware are surveyed.</summary>
    <author><name>Mary Somerville</name></author>
    <arxiv:journal_ref>ACM Computing Surveys 57 (2025)</arxiv:journal_ref>
    <link href="http://arxiv.org/abs/2410.00042v1" rel="alternate" type="text/html"/>
    <arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>
"""


class Replay:
    """routes: path -> list of (status, headers, body); the last response repeats."""

    def __init__(self, routes):
        self.routes = {k: list(v) for k, v in routes.items()}
        self.seen = []
        replay = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                u = urlparse(self.path)
                replay.seen.append((u.path, parse_qs(u.query), dict(self.headers)))
                q = replay.routes.get(u.path)
                if not q:
                    self.send_response(404)
                    self.end_headers()
                    return
                status, headers, body = q.pop(0) if len(q) > 1 else q[0]
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def count(self, path):
        return sum(1 for p, _, _ in self.seen if p == path)


JSON_H = {"Content-Type": "application/json"}
ATOM_H = {"Content-Type": "application/atom+xml"}


@pytest.fixture
def server():
    s = Replay({
        "/graph/v1/paper/search": [(429, {"Retry-After": "0.01"}, "slow down"), (500, {}, "oops"),
                                   (200, JSON_H, json.dumps(S2_BODY))],
        "/api/query": [(503, {}, "busy"), (200, ATOM_H, ATOM)],
    })
    yield s
    s.close()


class Sleeps(list):
    def __call__(self, s):
        self.append(s)


def test_semantic_scholar_retries_then_caches(server, tmp_path):
    sleeps = Sleeps()
    c = SemanticScholar(server.url + "/graph/v1", cache_dir=tmp_path, min_interval=0, backoff=0.5, sleep=sleeps)
    papers = c.search("hybrid convolution attention", limit=10)
    assert [p.title for p in papers] == [S2_BODY["data"][0]["title"], S2_BODY["data"][1]["title"]]
    p = papers[0]
    assert p.authors == ("Ada Lovelace", "Alan Turing") and p.year == 2025 and p.venue == "ICLR"
    assert p.id == "10.1/abc" and p.abstract.startswith("We combine")
    assert papers[1].abstract == ""
    assert server.count("/graph/v1/paper/search") == 3 and c.requests == 3
    assert sleeps == [0.01, 1.0]                     # Retry-After honoured, then backoff 0.5 * 2**1
    _, q, headers = server.seen[-1]
    assert q["query"] == ["hybrid convolution attention"] and q["limit"] == ["10"] and "title" in q["fields"][0]
    # second identical query: served from disk, no request
    c2 = SemanticScholar(server.url + "/graph/v1", cache_dir=tmp_path, min_interval=0, sleep=sleeps)
    again = c2.search("  hybrid   convolution attention ", limit=10)
    assert [x.to_dict() for x in again] == [x.to_dict() for x in papers]
    assert c2.cache_hits == 1 and c2.requests == 0 and server.count("/graph/v1/paper/search") == 3
    # a different limit is a different cache key
    c2.search("hybrid convolution attention", limit=5)
    assert server.count("/graph/v1/paper/search") == 4


def test_api_key_header(server, tmp_path):
    c = SemanticScholar(server.url + "/graph/v1", cache_dir=tmp_path, min_interval=0, api_key="k123",
                        sleep=Sleeps())
    c.search("x y", 3)
    assert server.seen[-1][2].get("x-api-key") == "k123"


def test_arxiv_through_arxiv_package(server, tmp_path):
    sleeps = Sleeps()
    c = Arxiv(server.url + "/api/query", cache_dir=tmp_path, min_interval=0, backoff=0.25, sleep=sleeps)
    papers = c.search("on-device language models with short convolutions", limit=5)
    assert [p.id for p in papers] == ["2502.01234v2", "2410.00042v1"]
    a, b = papers
    assert a.title == "Short Convolutions Are All You Need for On-Device Language Models"
    assert a.authors == ("Émilie du Châtelet", "Sophie Germain") and a.year == 2025 and a.venue == "arXiv"
    assert a.url == "http://arxiv.org/abs/2502.01234v2" and b.venue.startswith("ACM Computing Surveys")
    assert server.count("/api/query") == 2 and sleeps == [0.25]
    _, q, _ = server.seen[-1]
    assert q["search_query"] == ['all:"device language models" OR all:"short convolutions" OR all:device OR '
                                 'all:language OR all:models OR all:short OR all:convolutions']
    assert q["sortBy"] == ["relevance"]
    c.search("on-device language models with short convolutions", limit=5)
    assert server.count("/api/query") == 2 and c.cache_hits == 1


def test_retries_exhausted_and_non_retryable(tmp_path):
    s = Replay({"/graph/v1/paper/search": [(500, {}, "down")], "/api/query": [(400, {}, "bad query")]})
    try:
        sleeps = Sleeps()
        c = SemanticScholar(s.url + "/graph/v1", cache_dir=tmp_path, min_interval=0, max_retries=3,
                            backoff=1.0, max_backoff=3.0, sleep=sleeps)
        with pytest.raises(OnlineSearchError, match=r"failed after 4 attempts: HTTP 500"):
            c.search("q", 5)
        assert sleeps == [1.0, 2.0, 3.0] and s.count("/graph/v1/paper/search") == 4
        a = Arxiv(s.url + "/api/query", cache_dir=tmp_path, min_interval=0, sleep=Sleeps())
        with pytest.raises(OnlineSearchError, match="HTTP 400"):
            a.search("q", 5)
        assert s.count("/api/query") == 1                 # 400 is not retried
    finally:
        s.close()


def test_rate_limiter():
    t = [0.0]
    slept = []

    def sleep(d):
        slept.append(round(d, 6))
        t[0] += d

    rl = RateLimiter(3.0, clock=lambda: t[0], sleep=sleep)
    rl.wait()
    t[0] += 1.0
    rl.wait()
    rl.wait()
    t[0] += 10
    rl.wait()
    assert slept == [2.0, 3.0]


def test_client_rate_limit_between_requests(server, tmp_path):
    sleeps = Sleeps()
    c = SemanticScholar(server.url + "/graph/v1", cache_dir=tmp_path, min_interval=5.0, backoff=0.0,
                        sleep=sleeps)
    c.search("q1", 3)                                     # 3 requests (429, 500, 200)
    assert sum(1 for x in sleeps if x > 4) == 2          # the limiter waited before retries 2 and 3


def test_cache_ttl_and_corrupt_file(tmp_path):
    c = DiskCache(tmp_path, ttl=1000)
    c.put("k", [1, 2])
    assert c.get("k") == [1, 2]
    f = next(tmp_path.glob("*.json"))
    os.utime(f, (1, 1))
    assert c.get("k") is None                             # expired
    f.write_text("{not json")
    assert DiskCache(tmp_path, ttl=None).get("k") is None


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def test_unreachable_is_reported_fast(tmp_path):
    sleeps = Sleeps()
    c = SemanticScholar(closed_port_url() + "/graph/v1", cache_dir=tmp_path, min_interval=0, sleep=sleeps)
    with pytest.raises(OnlineSearchError) as e:
        c.search("q", 3)
    assert e.value.unreachable and sleeps == [] and "cannot reach" in str(e.value)


def test_no_corpus_offline_says_what_to_pass(tmp_path, monkeypatch):
    url = closed_port_url()
    monkeypatch.setenv("LIQUIDLFM_ARXIV_URL", url + "/api/query")
    monkeypatch.setenv("LIQUIDLFM_S2_URL", url + "/graph/v1")
    with pytest.raises(NoCorpusError, match=r"pass --corpus FILE .*BibTeX \(\.bib\).*JSON Lines.*CSV"):
        draft_related_work("hybrid models", cache_dir=tmp_path)
    monkeypatch.setenv("LIQUIDLFM_OFFLINE", "1")
    with pytest.raises(NoCorpusError, match=r"online search is disabled.*--corpus FILE"):
        draft_related_work("hybrid models", cache_dir=tmp_path)


def test_cli_no_corpus_offline_exit_code_and_message(tmp_path):
    url = closed_port_url()
    env = dict(os.environ, LIQUIDLFM_ARXIV_URL=url + "/api/query", LIQUIDLFM_S2_URL=url + "/graph/v1",
               PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "hybrid conv attention", "--no-model",
                        "--cache-dir", str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "--corpus FILE" in r.stderr and "cannot reach" in r.stderr and r.stdout == ""
    # without --no-model too: the corpus problem is reported before any model is looked for
    r = subprocess.run([sys.executable, "-m", "liquidlfm.scholar", "hybrid conv attention"],
                       capture_output=True, text=True, env=dict(env, LIQUIDLFM_OFFLINE="1"), cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 2 and "--corpus FILE" in r.stderr and "model" not in r.stderr.lower()


def test_online_draft_pools_both_services(server, tmp_path, monkeypatch):
    monkeypatch.setenv("LIQUIDLFM_ARXIV_URL", server.url + "/api/query")
    monkeypatch.setenv("LIQUIDLFM_S2_URL", server.url + "/graph/v1")
    import liquidlfm.scholar.online as online
    monkeypatch.setattr(online.time, "sleep", lambda s: None)      # replayed 429/503 backoff
    d = draft_related_work("on-device language models mixing convolution and attention",
                           arxiv=True, semantic_scholar=True, cache_dir=tmp_path, top_k=4)
    sources = {p.source for p in d.retrieved}
    assert sources == {"arxiv", "semantic-scholar"}
    assert set(d.cited) <= {p.key for p in d.retrieved} and d.cited
    assert "Short Convolutions" in d.markdown()


def test_search_online_one_service_down(server, tmp_path):
    ok = SemanticScholar(server.url + "/graph/v1", cache_dir=tmp_path, min_interval=0, sleep=Sleeps())
    down = Arxiv(closed_port_url() + "/api/query", cache_dir=tmp_path, min_interval=0, sleep=Sleeps())
    papers = search_online("q", clients=[down, ok])
    assert len(papers) == 2 and all(p.key for p in papers)
    with pytest.raises(OnlineSearchError) as e:
        search_online("q", clients=[down])
    assert e.value.unreachable


# ---- OpenAlex ----

OPENALEX_BODY = {
    "meta": {"count": 3, "page": 1, "per_page": 3},
    "results": [
        {"id": "https://openalex.org/W111", "doi": "https://doi.org/10.5555/conv.2025",
         "display_name": "Gated Convolutions for Small Language Models", "publication_year": 2025,
         "authorships": [{"author": {"display_name": "Ada Lovelace"}}, {"author": {"display_name": "Alan Turing"}}],
         # "short gated convolutions replace most attention layers ." with "convolutions" at 2 and 9
         "abstract_inverted_index": {"short": [0], "gated": [1], "convolutions": [2, 9], "replace": [3],
                                     "most": [4], "attention": [5], "layers": [6], "so": [7], "do": [8]},
         "primary_location": {"landing_page_url": "https://example.org/w111",
                              "source": {"display_name": "TMLR"}}},
        {"id": "https://openalex.org/W222", "doi": None, "display_name": "Edge Inference Without Attention",
         "publication_year": 2024, "authorships": [], "abstract_inverted_index": None, "primary_location": None},
        {"id": "https://openalex.org/W333", "display_name": "Broken Abstract", "publication_year": 2023,
         "authorships": [{"author": {"display_name": "Grace Hopper"}}],
         "abstract_inverted_index": {"a": [0], "b": [0]}},
        {"id": "https://openalex.org/W444", "display_name": None, "title": None},
    ],
}


def test_openalex_abstract_from_inverted_index():
    from liquidlfm.scholar.online import abstract_from_inverted_index
    assert abstract_from_inverted_index({"b": [1, 3], "a": [0, 2], "c": [4]}) == "a b a b c"
    assert abstract_from_inverted_index(None) == "" and abstract_from_inverted_index({}) == ""
    assert abstract_from_inverted_index({"gap": [5], "start": [0]}) == "start gap"
    for bad, msg in [([1], "not an object"), ({"a": 1}, "not a list"), ({"a": [-1]}, "non-negative"),
                     ({"a": ["0"]}, "non-negative"), ({"a": [0], "b": [0]}, "both 'a' and 'b'")]:
        with pytest.raises(ValueError, match=msg):
            abstract_from_inverted_index(bad)


def test_openalex_retries_rebuilds_abstracts_and_caches(tmp_path):
    from liquidlfm.scholar.online import OpenAlex
    s = Replay({"/works": [(503, {}, "busy"), (429, {"Retry-After": "0.02"}, "slow"),
                           (200, JSON_H, json.dumps(OPENALEX_BODY))]})
    try:
        sleeps, logs = Sleeps(), []
        c = OpenAlex(s.url, cache_dir=tmp_path, min_interval=0, backoff=0.5, sleep=sleeps, mailto="me@example.org",
                     log=logs.append)
        papers = c.search("gated convolutions small language models", limit=7)
        assert [p.title for p in papers] == ["Gated Convolutions for Small Language Models",
                                             "Edge Inference Without Attention", "Broken Abstract"]
        a, b, broken = papers
        assert a.abstract == "short gated convolutions replace most attention layers so do convolutions"
        assert a.authors == ("Ada Lovelace", "Alan Turing") and a.year == 2025 and a.venue == "TMLR"
        assert a.id == "10.5555/conv.2025" and a.url == "https://example.org/w111" and a.source == "openalex"
        assert b.abstract == "" and b.authors == () and b.id == "W222" and b.url == "https://openalex.org/W222"
        assert broken.abstract == "" and any("result 3: abstract left out" in m for m in logs)
        assert s.count("/works") == 3 and sleeps == [0.5, 0.02]
        _, q, _ = s.seen[-1]
        assert q["search"] == ["gated convolutions small language models"] and q["per-page"] == ["7"]
        assert q["mailto"] == ["me@example.org"] and "abstract_inverted_index" in q["select"][0]
        again = OpenAlex(s.url, cache_dir=tmp_path, min_interval=0, sleep=sleeps).search(
            "gated  convolutions small language models", limit=7)
        assert [p.to_dict() for p in again] == [p.to_dict() for p in papers] and s.count("/works") == 3
    finally:
        s.close()


def test_openalex_bad_responses(tmp_path):
    from liquidlfm.scholar.online import OpenAlex
    s = Replay({"/works": [(400, {}, "bad search")], "/x/works": [(200, JSON_H, '{"meta": {}}')]})
    try:
        with pytest.raises(OnlineSearchError, match="openalex: HTTP 400"):
            OpenAlex(s.url, cache_dir=tmp_path, min_interval=0, sleep=Sleeps()).search("q", 3)
        with pytest.raises(OnlineSearchError, match="no 'results' list"):
            OpenAlex(s.url + "/x", cache_dir=tmp_path, min_interval=0, sleep=Sleeps()).search("q", 3)
    finally:
        s.close()


def test_fallback_chain_semantic_scholar_then_openalex_then_arxiv(tmp_path):
    from liquidlfm.scholar.online import OpenAlex
    s = Replay({"/graph/v1/paper/search": [(500, {}, "down")], "/works": [(200, JSON_H, json.dumps(OPENALEX_BODY))],
                "/empty/works": [(200, JSON_H, '{"results": []}')], "/api/query": [(200, ATOM_H, ATOM)]})
    try:
        def clients(openalex_path):
            kw = dict(cache_dir=tmp_path, min_interval=0, max_retries=0, sleep=Sleeps())
            return [SemanticScholar(s.url + "/graph/v1", **kw), OpenAlex(s.url + openalex_path, **kw),
                    Arxiv(s.url + "/api/query", **kw)]
        logs = []
        got = search_online("q", clients=clients(""), fallback=True, log=logs.append)
        assert {p.source for p in got} == {"openalex"} and s.count("/api/query") == 0
        assert any("semantic-scholar failed" in m and "trying the next service" in m for m in logs)
        got = search_online("q", clients=clients("/empty"), fallback=True, log=logs.append)
        assert {p.source for p in got} == {"arxiv"} and any("openalex found nothing" in m for m in logs)
        pooled = search_online("q", clients=clients(""))             # no fallback: every service, pooled
        assert {p.source for p in pooled} == {"openalex", "arxiv"}
    finally:
        s.close()


def test_default_online_search_is_the_fallback_chain(tmp_path, monkeypatch):
    s = Replay({"/graph/v1/paper/search": [(200, JSON_H, json.dumps(S2_BODY))],
                "/works": [(200, JSON_H, json.dumps(OPENALEX_BODY))], "/api/query": [(200, ATOM_H, ATOM)]})
    try:
        monkeypatch.setenv("LIQUIDLFM_ARXIV_URL", s.url + "/api/query")
        monkeypatch.setenv("LIQUIDLFM_S2_URL", s.url + "/graph/v1")
        monkeypatch.setenv("LIQUIDLFM_OPENALEX_URL", s.url)
        from liquidlfm.scholar import gather_papers
        papers = gather_papers("hybrid convolution attention", cache_dir=tmp_path)
        assert {p.source for p in papers} == {"semantic-scholar"}                # the first that answers
        assert s.count("/works") == 0 and s.count("/api/query") == 0
        papers = gather_papers("hybrid convolution attention", openalex=True, arxiv=True, cache_dir=tmp_path)
        assert {p.source for p in papers} == {"openalex", "arxiv"}               # asked for: pooled
    finally:
        s.close()
