"""Online paper search: Semantic Scholar (its public Graph API), OpenAlex (its REST API) and arXiv
(through the `arxiv` package), each with a rate limit, retries with exponential backoff on 429/5xx/connection errors, and an on-disk
cache keyed by (service, query, limit) so a repeated query never touches the network.

Base URLs can be pointed elsewhere (tests use a loopback replay server):
LIQUIDLFM_ARXIV_URL, LIQUIDLFM_S2_URL, LIQUIDLFM_OPENALEX_URL; cache dir: LIQUIDLFM_SCHOLAR_CACHE (default
~/.cache/liquidlfm/scholar); Semantic Scholar API key (optional): S2_API_KEY; OpenAlex (optional):
OPENALEX_API_KEY, OPENALEX_MAILTO (its "polite pool" address).

search_online() either pools the services it is given, or (fallback=True, LFM-Scholar's order)
tries Semantic Scholar, then OpenAlex, then arXiv, and stops at the first that returns papers.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from .corpus import Paper, paper_from_record, finalize

ARXIV_URL = "https://export.arxiv.org/api/query"
S2_URL = "https://api.semanticscholar.org/graph/v1"
OPENALEX_URL = "https://api.openalex.org"
RETRY_STATUS = (429, 500, 502, 503, 504)


class OnlineSearchError(RuntimeError):
    """An online search failed after its retries (or the network is unreachable)."""

    def __init__(self, msg, *, unreachable: bool = False):
        super().__init__(msg)
        self.unreachable = unreachable


def default_cache_dir() -> Path:
    env = os.environ.get("LIQUIDLFM_SCHOLAR_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "liquidlfm" / "scholar"


class DiskCache:
    """JSON files named by the SHA-256 of the key; written atomically; `ttl` seconds (None = forever)."""

    def __init__(self, directory=None, ttl: Optional[float] = 7 * 24 * 3600):
        self.dir = Path(directory) if directory else default_cache_dir()
        self.ttl = ttl

    def _path(self, key: str) -> Path:
        return self.dir / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".json")

    def get(self, key: str):
        p = self._path(key)
        try:
            if self.ttl is not None and time.time() - p.stat().st_mtime > self.ttl:
                return None
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data.get("value") if data.get("key") == key else None

    def put(self, key: str, value) -> None:
        from .render import atomic_write
        try:
            atomic_write(self._path(key), json.dumps({"key": key, "value": value}))
        except OSError:
            pass                                               # a cache that cannot be written is only slower


class RateLimiter:
    """At most one request per `interval` seconds (per client)."""

    def __init__(self, interval: float, clock=None, sleep=None):
        self.interval = interval
        self.clock = clock or (lambda: time.monotonic())
        self.sleep = sleep if sleep is not None else (lambda s: time.sleep(s))
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self):
        with self._lock:
            now = self.clock()
            if now < self._next:
                self.sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


class _Client:
    name = "online"

    def __init__(self, base_url, *, cache=None, cache_dir=None, min_interval=1.0, max_retries=4,
                 backoff=1.0, max_backoff=30.0, timeout=20.0, sleep=None, log: Optional[Callable] = None):
        self.base_url = base_url.rstrip("?/")
        self.cache = cache if cache is not None else DiskCache(cache_dir)
        self.limiter = RateLimiter(min_interval, sleep=sleep)
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.timeout = timeout
        self.sleep = sleep if sleep is not None else (lambda s: time.sleep(s))
        self.log = log or (lambda msg: None)
        self.requests = 0          # network requests actually made (tests check cache hits with it)
        self.cache_hits = 0

    def search(self, query: str, limit: int = 20) -> list:
        query = " ".join(query.split())
        if not query:
            raise ValueError("empty search query")
        key = f"{self.name}|{self.base_url}|{limit}|{query}"
        hit = self.cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            self.log(f"{self.name}: cache hit for '{query[:60]}'")
            return [Paper(**{k: (tuple(v) if k == "authors" else v) for k, v in d.items()}) for d in hit]
        papers = self._with_retries(lambda: self._fetch(query, limit), query)
        self.cache.put(key, [p.to_dict() for p in papers])
        return papers

    def _json_response(self, r, query):
        """A JSON service's answer: retryable statuses raise _Retryable, other errors OnlineSearchError."""
        if r.status_code in RETRY_STATUS:
            raise _Retryable(r.status_code, _retry_after(r.headers))
        if r.status_code != 200:
            raise OnlineSearchError(f"{self.name}: HTTP {r.status_code} for '{query[:60]}': {r.text[:200]}")
        try:
            return r.json()
        except ValueError:
            raise OnlineSearchError(f"{self.name}: response is not JSON: {r.text[:120]!r}") from None

    def _with_retries(self, fn, query):
        import requests

        last = None
        for attempt in range(self.max_retries + 1):
            self.limiter.wait()
            self.requests += 1
            try:
                return fn()
            except _Retryable as e:
                last = e
                delay = min(self.max_backoff, e.retry_after if e.retry_after is not None
                            else self.backoff * (2 ** attempt))
            except requests.exceptions.ConnectionError as e:
                last = e
                if attempt == 0 and _is_unreachable(e):
                    raise OnlineSearchError(f"{self.name}: cannot reach {self.base_url} ({_short(e)})",
                                            unreachable=True) from None
                delay = min(self.max_backoff, self.backoff * (2 ** attempt))
            except requests.exceptions.Timeout as e:
                last = e
                delay = min(self.max_backoff, self.backoff * (2 ** attempt))
            if attempt < self.max_retries:
                self.log(f"{self.name}: {_short(last)}; retrying in {delay:.1f}s "
                         f"({attempt + 1}/{self.max_retries})")
                self.sleep(delay)
        raise OnlineSearchError(f"{self.name}: search for '{query[:60]}' failed after "
                                f"{self.max_retries + 1} attempts: {_short(last)}")


class _Retryable(Exception):
    def __init__(self, status, retry_after=None):
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


def _retry_after(headers) -> Optional[float]:
    v = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(v)) if v is not None else None
    except ValueError:
        return None


def _short(e) -> str:
    s = str(e) or type(e).__name__
    return s if len(s) < 160 else s[:157] + "..."


def _is_unreachable(e) -> bool:
    s = str(e).lower()
    return any(x in s for x in ("name or service not known", "temporary failure in name resolution",
                                "nodename nor servname", "network is unreachable", "no route to host",
                                "connection refused", "failed to resolve", "getaddrinfo"))


class SemanticScholar(_Client):
    """Semantic Scholar Graph API paper search (GET {base}/paper/search)."""

    name = "semantic-scholar"
    FIELDS = "title,abstract,authors,year,venue,externalIds,url"

    def __init__(self, base_url=None, *, api_key=None, **kw):
        kw.setdefault("min_interval", 1.0)
        super().__init__(base_url or os.environ.get("LIQUIDLFM_S2_URL") or S2_URL, **kw)
        self.api_key = api_key if api_key is not None else os.environ.get("S2_API_KEY")
        import requests
        self.session = requests.Session()

    def _fetch(self, query, limit):
        headers = {"User-Agent": "liquidlfm-scholar/0.1"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        r = self.session.get(f"{self.base_url}/paper/search", timeout=self.timeout, headers=headers,
                             params={"query": query, "limit": min(int(limit), 100), "fields": self.FIELDS})
        data = self._json_response(r, query)
        out = []
        for i, d in enumerate(data.get("data") or [], 1):
            if not d.get("title"):
                continue
            ext = d.get("externalIds") or {}
            rec = {"title": d["title"], "abstract": d.get("abstract") or "",
                   "authors": [a.get("name", "") for a in d.get("authors") or []],
                   "year": d.get("year"), "venue": d.get("venue") or "",
                   "url": d.get("url") or "", "id": ext.get("DOI") or ext.get("ArXiv") or d.get("paperId", "")}
            out.append(paper_from_record(rec, f"{self.name} result {i}", self.name))
        return out


class Arxiv(_Client):
    """arXiv API search through the `arxiv` package (its own retries off; ours have backoff)."""

    name = "arxiv"

    def __init__(self, base_url=None, **kw):
        kw.setdefault("min_interval", 3.0)                       # arXiv terms of use: 1 request / 3 s
        super().__init__(base_url or os.environ.get("LIQUIDLFM_ARXIV_URL") or ARXIV_URL, **kw)
        import arxiv
        self.client = arxiv.Client(page_size=100, delay_seconds=0.0, num_retries=0)
        self.client.query_url_format = self.base_url + "?{}"

    @staticmethod
    def build_query(text: str) -> str:
        from .text import STOPWORDS, keyphrases, words
        phrases = keyphrases(text, 3)
        terms = [w for w in dict.fromkeys(words(text)) if w not in STOPWORDS and len(w) > 2][:8]
        parts = [f'all:"{p}"' for p in phrases] + [f"all:{t}" for t in terms]
        return " OR ".join(parts) if parts else text

    def _fetch(self, query, limit):
        import arxiv
        import requests

        search = arxiv.Search(query=self.build_query(query), max_results=int(limit),
                              sort_by=arxiv.SortCriterion.Relevance)
        try:
            results = list(self.client.results(search))
        except arxiv.HTTPError as e:
            if e.status in RETRY_STATUS:
                raise _Retryable(e.status) from None
            raise OnlineSearchError(f"{self.name}: HTTP {e.status} for '{query[:60]}'") from None
        except arxiv.UnexpectedEmptyPageError as e:
            raise _Retryable(f"empty page ({e})") from None
        except requests.exceptions.RequestException:
            raise
        out = []
        for i, r in enumerate(results, 1):
            rec = {"title": r.title, "abstract": r.summary, "authors": [a.name for a in r.authors],
                   "year": r.published.year if r.published else None,
                   "venue": r.journal_ref or "arXiv", "url": r.entry_id, "id": r.get_short_id()}
            p = paper_from_record(rec, f"{self.name} result {i}", self.name)
            p.entry_type = "misc"
            out.append(p)
        return out


class OpenAlex(_Client):
    """OpenAlex works search (GET {base}/works?search=...). Abstracts come as an inverted index
    (word -> positions) and are rebuilt in order (abstract_from_inverted_index)."""

    name = "openalex"
    SELECT = "id,doi,display_name,title,publication_year,authorships,abstract_inverted_index,primary_location"

    def __init__(self, base_url=None, *, api_key=None, mailto=None, **kw):
        kw.setdefault("min_interval", 0.2)                       # OpenAlex allows 10 requests / s
        super().__init__(base_url or os.environ.get("LIQUIDLFM_OPENALEX_URL") or OPENALEX_URL, **kw)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENALEX_API_KEY")
        self.mailto = mailto if mailto is not None else os.environ.get("OPENALEX_MAILTO")
        import requests
        self.session = requests.Session()

    def _fetch(self, query, limit):
        params = {"search": query, "per-page": max(1, min(int(limit), 200)), "select": self.SELECT}
        if self.api_key:
            params["api_key"] = self.api_key
        if self.mailto:
            params["mailto"] = self.mailto
        r = self.session.get(f"{self.base_url}/works", timeout=self.timeout, params=params,
                             headers={"User-Agent": "liquidlfm-scholar/0.1"})
        data = self._json_response(r, query)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise OnlineSearchError(f"{self.name}: response has no 'results' list: {r.text[:120]!r}")
        out = []
        for i, d in enumerate(results, 1):
            title = (d.get("display_name") or d.get("title") or "") if isinstance(d, dict) else ""
            if not title:
                continue
            where = f"{self.name} result {i}"
            try:
                abstract = abstract_from_inverted_index(d.get("abstract_inverted_index"))
            except ValueError as e:
                self.log(f"{where}: abstract left out ({e})")
                abstract = ""
            loc = d.get("primary_location") or {}
            source = loc.get("source") or {}
            doi = (d.get("doi") or "").replace("https://doi.org/", "")
            rec = {"title": title, "abstract": abstract,
                   "authors": [((a.get("author") or {}).get("display_name") or "") for a in d.get("authorships") or []],
                   "year": d.get("publication_year"), "venue": source.get("display_name") or "",
                   "url": loc.get("landing_page_url") or d.get("id") or "",
                   "id": doi or (d.get("id") or "").rsplit("/", 1)[-1]}
            rec["authors"] = [a for a in rec["authors"] if a]
            out.append(paper_from_record(rec, where, self.name))
        return out


def abstract_from_inverted_index(index) -> str:
    """OpenAlex's abstract_inverted_index ({"word": [positions], ...}) -> the text, words in position
    order. None or {} -> "". ValueError when it is not a map of words to lists of non-negative ints,
    or two words claim one position."""
    if not index:
        return ""
    if not isinstance(index, dict):
        raise ValueError(f"abstract_inverted_index is a {type(index).__name__}, not an object")
    at = {}
    for word, positions in index.items():
        if not isinstance(positions, list):
            raise ValueError(f"positions of {word!r} are not a list")
        for pos in positions:
            if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0:
                raise ValueError(f"position {pos!r} of {word!r} is not a non-negative integer")
            if pos in at and at[pos] != word:
                raise ValueError(f"position {pos} holds both {at[pos]!r} and {word!r}")
            at[pos] = word
    return " ".join(at[p] for p in sorted(at))


SERVICES = ("semantic-scholar", "openalex", "arxiv")           # LFM-Scholar's fallback order


def search_online(query: str, *, arxiv: bool = True, semantic_scholar: bool = True, openalex: bool = False,
                  fallback: bool = False, limit: int = 40, cache_dir=None, log: Optional[Callable] = None,
                  clients=None) -> list:
    """Search the chosen services and pool the results (deduplicated, unique keys); with
    fallback=True, try them in turn (Semantic Scholar, OpenAlex, arXiv) and keep the first that
    returns papers. Raises OnlineSearchError if every service failed (unreachable=True when every
    one was unreachable)."""
    log = log or (lambda m: None)
    if clients is None:
        clients = []
        if semantic_scholar:
            clients.append(SemanticScholar(cache_dir=cache_dir, log=log))
        if openalex:
            clients.append(OpenAlex(cache_dir=cache_dir, log=log))
        if arxiv:
            clients.append(Arxiv(cache_dir=cache_dir, log=log))
        if not fallback:                                  # pooled: the order of today's results
            clients.sort(key=lambda c: {"arxiv": 0}.get(c.name, 1))
    if not clients:
        raise ValueError("no online service chosen")
    papers, errors = [], []
    for c in clients:
        log(f"searching {c.name}")
        try:
            got = c.search(query, limit)
        except OnlineSearchError as e:
            errors.append(e)
            log(f"{c.name} failed: {e}" + ("; trying the next service" if fallback else ""))
            continue
        log(f"{c.name}: {len(got)} papers")
        papers.extend(got)
        if fallback and got:
            break
        if fallback:
            log(f"{c.name} found nothing; trying the next service")
    if not papers and errors:
        raise OnlineSearchError("; ".join(str(e) for e in errors),
                                unreachable=all(e.unreachable for e in errors))
    for p in papers:
        p.key = ""
    return finalize(papers)
