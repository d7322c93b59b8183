"""The Translator: one model; each piece is a chat prompt (system: the prompt format's line, e.g.
``Translate the following text to Korean.`` for the KoEn model, ``Translate to Korean.`` for a general
LFM2; user: the piece). The pieces of a document or a list run together through the model's batch engine
(Model.batch, greedy by default; quality="mbr": N samples per piece, the minimum-Bayes-risk one kept);
every translation is made safe for its place in the markdown (translate.markup) before it is yielded.
translate_piece runs one piece alone in the translator's session, with the prompt prefix up to the
user's text kept in the session's prefix cache."""
from __future__ import annotations

import json
import re
import warnings
from typing import Iterator, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

from ..errors import ContextFullError
from ..generation import CachedSession, GenerationResult
from ..segment import segment, segment_plain
from .languages import auto_target, detect_language, language
from .markup import fit_to_place, starts_line
from .mbr import mbr_select
from .models import PROMPT_FORMATS, prompt_format_for
from .prompts import glossary_for, system_prompt

__all__ = ["Translator", "TranslationModel", "TranslationTruncatedWarning"]


class TranslationTruncatedWarning(UserWarning):
    """A translated piece stopped at max_tokens before the model ended it (it may be cut short)."""


# ---- what the translator needs from a model (liquidlfm.Model has it all) ----

@runtime_checkable
class TranslationTokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = True, parse_special: bool = True) -> List[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...


class TrainedContext(Protocol):
    n_ctx_train: int


@runtime_checkable
class TranslationModel(Protocol):
    tokenizer: Optional[TranslationTokenizer]
    chat_template: Optional[str]
    config: TrainedContext

    @property
    def stop_token_ids(self) -> List[int]: ...

    def session(self, n_ctx: Optional[int] = None) -> CachedSession: ...

    def apply_chat_template(self, messages, tools=None, add_generation_prompt: bool = True, **kwargs) -> str: ...

    def generate(self, prompt, max_tokens: Optional[int] = None, **kwargs) -> GenerationResult: ...


_CLAUSE = re.compile(r"(?<=[,;:，；：、])\s+|(?<=[,;:，；：、])")
_SPACE = re.compile(r"\s+")
_MARKER = "\x00LFM_SPLIT\x00"
ANSWER_MARGIN = 8  # tokens of room beyond the source's length a piece's translation is given at least


def _answer_room(n_src: int, max_tokens: Optional[int]) -> int:
    """The room a piece of n_src tokens needs after its prompt: as many tokens as the source plus
    ANSWER_MARGIN, or max_tokens when that asks for less."""
    need = n_src + ANSWER_MARGIN
    return need if max_tokens is None else min(int(max_tokens), need)


def _term_spans(text: str, glossary) -> List[Tuple[int, int]]:
    """(start, end) of every occurrence (case-insensitive) of a glossary term in text."""
    low, spans = text.lower(), []
    for term in glossary or ():
        t = term.lower()
        i = low.find(t)
        while t and i >= 0:
            spans.append((i, i + len(t)))
            i = low.find(t, i + 1)
    return spans


class Translator:
    """Translate with one model. Its session's prefix cache keeps the prefilled prompt prefix (system
    prompt), so every piece only prefills its own tokens. Not thread-safe (one session); create one
    per thread."""

    def __init__(self, model: TranslationModel, *, n_ctx: Optional[int] = None,
                 prompt_format: Optional[str] = None):
        self.model = model
        # the system prompt's format: given, else the registry's for this model (its path), else "liquid"
        self.prompt_format = prompt_format or prompt_format_for(model)
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
        if model.tokenizer is None:
            raise ValueError("the model has no tokenizer; translation needs a model with a tokenizer")
        self.tokenizer = model.tokenizer
        if not model.chat_template:
            raise ValueError("the model has no chat template; translation needs an instruction-tuned LFM2")
        n_train = model.config.n_ctx_train or 32768
        self.n_ctx = int(n_ctx or min(n_train, 4096))
        self.stop_ids = set(model.stop_token_ids)  # what ends a translation (generation stops on them)
        if not self.stop_ids:
            raise ValueError("cannot tell the model's end-of-turn token (no eos id and no <|im_end|>)")
        self._session: Optional[CachedSession] = None
        self.stats = {"segments": 0, "prompt_tokens": 0, "generated_tokens": 0}

    # ---- prompts ----

    def render(self, text: str, target: str, *, formality=None, glossary=None) -> str:
        """The exact prompt string for one piece (the model's chat template applied to system + user)."""
        msgs = [{"role": "system", "content": system_prompt(target, formality=formality, glossary=glossary,
                                                             prompt_format=self.prompt_format)},
                {"role": "user", "content": text}]
        return self.model.apply_chat_template(msgs, add_generation_prompt=True)

    def _encode(self, s: str) -> List[int]:
        return list(self.tokenizer.encode(s, add_special_tokens=False, parse_special=True))

    def _prompt_ids(self, text, target, formality, glossary) -> Tuple[List[int], str]:
        prompt = self.render(text, target, formality=formality, glossary=glossary)
        return self._encode(prompt), prompt

    def _prefix_ids(self, target, formality, glossary) -> Optional[List[int]]:
        """The prompt's tokens up to the user's text: the same for every piece with this system prompt."""
        marked = self.render(_MARKER, target, formality=formality, glossary=glossary)
        return self._encode(marked.split(_MARKER)[0]) if _MARKER in marked else None

    def _sess(self) -> CachedSession:
        if self._session is None:
            self._session = self.model.session(n_ctx=self.n_ctx)
        return self._session

    def close(self):
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- one piece ----

    def translate_piece(self, text: str, target: str, *, formality=None, glossary=None,
                        max_tokens: Optional[int] = None, temperature: float = 0.0, top_k: int = 0,
                        min_p: float = 0.0, repetition_penalty: float = 1.0,
                        seed: Optional[int] = None) -> Tuple[str, str]:
        """Translate one piece (no segmentation). Returns (translation, finish_reason: "stop"|"length")."""
        gl = glossary_for(text, glossary)
        ids, budget = self._piece_prompt(text, target, formality, gl, max_tokens)
        out = self.model.generate(ids, budget, session=self._sess(),
                                  cache_prefix=self._prefix_ids(target, formality, gl),
                                  **_sampling(temperature, top_k, min_p, repetition_penalty, seed))
        return self._finish_piece(ids, out)

    def _piece_prompt(self, text, target, formality, gl, max_tokens) -> Tuple[List[int], int]:
        """The prompt ids of one piece and its max_tokens (capped by the room left in the context)."""
        ids, _ = self._prompt_ids(text, target, formality, gl)
        n_src = len(self._encode(text))
        budget = int(max_tokens) if max_tokens is not None else 3 * n_src + 20
        room = self.n_ctx - len(ids)
        if room < _answer_room(n_src, max_tokens):
            raise self._does_not_fit(text, target, formality, gl, ids, n_src, max_tokens)
        return ids, min(budget, room)

    def _finish_piece(self, ids, out: GenerationResult) -> Tuple[str, str]:
        self.stats["segments"] += 1
        self.stats["prompt_tokens"] += len(ids)
        self.stats["generated_tokens"] += len(out.token_ids) + (1 if out.finish_reason == "stop" else 0)
        text_out = self.tokenizer.decode(out.token_ids, skip_special_tokens=True)
        return text_out.strip(), out.finish_reason

    def _fit(self, text: str, target, formality, glossary, max_tokens=None) -> List[str]:
        """Split a piece until each part's whole prompt (system prompt with the register line and the
        glossary lines of the terms in that part, chat template, the part) leaves room to translate it
        (_answer_room) in the context: at the clause boundary nearest the middle, else the word
        boundary, never inside a glossary term (each part keeps its terms' glossary lines).
        A part that cannot be split and still does not fit raises ContextFullError naming the cause."""
        gl = glossary_for(text, glossary)
        ids, _ = self._prompt_ids(text, target, formality, gl)
        n_src = len(self._encode(text))
        if len(ids) + _answer_room(n_src, max_tokens) <= self.n_ctx:
            return [text]
        cut = self._split_point(text, gl)
        if cut is None:
            raise self._does_not_fit(text, target, formality, gl, ids, n_src, max_tokens)
        return (self._fit(text[:cut[0]], target, formality, glossary, max_tokens)
                + self._fit(text[cut[1]:], target, formality, glossary, max_tokens))

    @staticmethod
    def _split_point(text: str, glossary) -> Optional[Tuple[int, int]]:
        """(end of the first part, start of the second) nearest the middle of text: a clause boundary,
        else a word boundary; none inside a glossary term's occurrence; None if there is none."""
        spans = _term_spans(text, glossary)
        for boundary in (_CLAUSE, _SPACE):
            cuts = [(m.start(), m.end()) for m in boundary.finditer(text)
                    if text[:m.start()].strip() and text[m.end():].strip()
                    and not any(a < m.end() and m.start() < b for a, b in spans)]
            if cuts:
                return min(cuts, key=lambda c: abs(c[0] + c[1] - len(text)))
        return None

    def _does_not_fit(self, text, target, formality, gl, ids, n_src, max_tokens) -> ContextFullError:
        """The error for a piece that cannot be split further and does not fit, naming what is too big:
        its glossary lines, the prompt around it, or the piece itself."""
        need = _answer_room(n_src, max_tokens)
        if gl:
            bare, _ = self._prompt_ids(text, target, formality, None)
            if len(bare) + need <= self.n_ctx:
                terms = ", ".join(repr(k) for k in list(gl)[:5]) + (", ..." if len(gl) > 5 else "")
                return ContextFullError(
                    f"the glossary lines for the {len(gl)} term(s) in {text[:40]!r} ({terms}) take "
                    f"{len(ids) - len(bare)} tokens: with them the prompt has {len(ids)} tokens and the "
                    f"translation needs {need} more, but the context holds {self.n_ctx}; shorten those "
                    f"glossary entries or pass a larger n_ctx")
        around = len(ids) - n_src
        if around + 1 + _answer_room(1, max_tokens) > self.n_ctx:
            return ContextFullError(
                f"the prompt around a piece (system prompt, register and glossary lines, chat template) "
                f"takes {around} tokens and leaves no room for a piece and its translation in the "
                f"{self.n_ctx}-token context; pass a larger n_ctx")
        return ContextFullError(
            f"a single piece of {n_src} tokens cannot fit the {self.n_ctx}-token context "
            f"(prompt {len(ids)} tokens, {need} more to translate it) and has no sentence, clause or "
            f"word boundary to split at")

    # ---- documents ----

    def iter_translate(self, text: str, target: str, **kw) -> Iterator[str]:
        """Yield the translated document piece by piece (markup verbatim, translations in between).
        Keyword arguments as iter_documents; the pieces are translated together in batches."""
        for _, piece in self.iter_documents([text], target, **kw):
            yield piece

    def iter_documents(self, texts: Sequence[str], target: Optional[str], *, source=None, formality=None,
                       glossary=None, max_tokens=None, markdown=True, progress=None, memo=None,
                       n_seq: Optional[int] = None, quality: str = "plain", n_samples: int = 8,
                       **gen) -> Iterator[Tuple[int, str]]:
        """Yield (document index, piece) for every piece of every document, in order (markup
        verbatim, translations in between, each made safe for its place: translate.markup). The pieces
        that need the model run together through a batch engine of n_seq sequences (default 8): a few
        batches ahead of the one being yielded.
        target None: each document's own direction (auto_target: Hangul -> English, else Korean).
        quality: "plain" (one generation per piece) or "mbr" (n_samples per piece in one batch, the
        minimum-Bayes-risk sample kept, translate.mbr).
        memo: a dict shared across calls to translate repeated pieces once (greedy decoding only)."""
        if quality not in ("plain", "mbr"):
            raise ValueError(f"quality must be 'plain' or 'mbr', got {quality!r}")
        n_draw = 1
        if quality == "mbr":
            if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
                raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
            n_draw = n_samples
        src_fixed = language(source).code if source is not None else None
        greedy = not gen.get("temperature")
        memo = memo if (memo is not None and greedy and n_draw == 1) else None
        plan = []  # (doc, verbatim str) or (doc, key, [part jobs], segment, joiner)
        jobs = []  # [part, gl, prompt ids, budget, target, request(s) or result or None, (+ (text, finish) once read)]
        by_key = {}
        for d, text in enumerate(texts):
            tgt = language(target) if target is not None else language(auto_target(text))
            joiner = "" if tgt.code in ("ja", "zh") else " "
            for seg in (segment(text) if markdown else segment_plain(text)):
                if not seg.translate:
                    plan.append((d, seg.text))
                    continue
                piece = re.sub(r"[ \t]*\n[ \t]*", " ", seg.text)
                src = src_fixed or detect_language(piece)
                key = (piece, tgt.code, formality, json.dumps(glossary_for(piece, glossary), ensure_ascii=False),
                       max_tokens)
                if src == tgt.code:
                    plan.append((d, seg.text))  # already in the target language
                elif memo is not None and key in memo:
                    plan.append((d, key, None, seg, joiner))
                elif key in by_key:
                    plan.append((d, key, by_key[key], seg, joiner))
                else:
                    parts = []
                    for part in self._fit(piece, tgt.code, formality, glossary, max_tokens):
                        gl = glossary_for(part, glossary)
                        ids, budget = self._piece_prompt(part, tgt.code, formality, gl, max_tokens)
                        parts.append([part, gl, ids, budget, tgt.code, None])
                    jobs.extend(parts)
                    if memo is not None:
                        by_key[key] = parts
                    plan.append((d, key, parts, seg, joiner))
        runner = _PieceRunner(self, jobs, formality, _sampling(**gen), n_seq, n_draw)
        line = {}  # document -> its output's current line so far (where the next piece lands)
        try:
            for item in plan:
                d = item[0]
                if len(item) == 2:
                    out = item[1]
                else:
                    _, key, parts, seg, joiner = item
                    if parts is None:
                        out = memo[key]
                    else:
                        outs = []
                        for job in parts:
                            o, finish = runner.result(job)
                            if finish == "length":
                                warnings.warn(TranslationTruncatedWarning(
                                    f"translation of {job[0][:40]!r}... stopped at the max_tokens limit; it may "
                                    "be incomplete (pass a larger max_tokens)"), stacklevel=3)
                            outs.append(o)
                        out = joiner.join(outs)
                        if memo is not None:
                            memo[key] = out
                    if markdown:
                        out = fit_to_place(out, seg.text, where=seg.where,
                                           line_start=starts_line(line.get(d, "")))
                    if progress is not None:
                        progress.update(1)
                nl = out.rfind("\n")
                line[d] = out[nl + 1:] if nl >= 0 else line.get(d, "") + out
                yield d, out
        finally:
            runner.close()


def _sampling(temperature: float = 0.0, top_k: int = 0, min_p: float = 0.0, repetition_penalty: float = 1.0,
              seed: Optional[int] = None) -> dict:
    # sampling as asked: no nucleus cut, no penalties unless asked (temperature 0 = argmax)
    return dict(temperature=temperature, top_k=top_k, top_p=1.0, min_p=min_p,
                repetition_penalty=repetition_penalty, seed=seed)


class _PieceRunner:
    """Runs a translator's piece jobs through one BatchEngine, submitting a window of jobs ahead of
    the one asked for (so memory stays bounded for any number of pieces). n_draw > 1 (MBR): each job
    is n_draw generations of its prompt (submit_n: prefilled once, sample i with seed + i), of which
    mbr_select keeps one. A model that does not batch (supports_batch False: a test double) runs each
    generation alone through the translator's session, with the same seeds."""

    AHEAD = 4  # batches submitted ahead of the job being read
    RESULT = 5  # the job's slot for its request(s) / generation result(s)

    def __init__(self, tr: Translator, jobs, formality, sampling, n_seq, n_draw: int = 1):
        self.tr, self.jobs, self.formality, self.sampling = tr, jobs, formality, sampling
        self.n_draw = n_draw
        self.index = {id(j): i for i, j in enumerate(jobs)}
        self.submitted = 0
        self.engine = None
        if jobs and getattr(tr.model, "supports_batch", False):
            n = max(n_draw, min(len(jobs) * n_draw, int(n_seq or 8)))
            self.engine = tr.model.batch(n_seq=n, n_ctx=tr.n_ctx)

    def _seeded(self, i: int) -> dict:
        sp = dict(self.sampling)
        if sp.get("seed") is not None:
            sp["seed"] = int(sp["seed"]) + i
        return sp

    def result(self, job) -> Tuple[str, str]:
        r = self.RESULT
        if job[r] is None:
            if self.engine is None:
                ids, budget = job[2], job[3]
                job[r] = [self.tr.model.generate(ids, budget, session=self.tr._sess(),
                                                 cache_prefix=self.tr._prefix_ids(job[4], self.formality, job[1]),
                                                 **self._seeded(i))
                          for i in range(self.n_draw)]
            else:
                i = self.index[id(job)]
                ahead = max(1, self.AHEAD * self.engine.n_seq // self.n_draw)
                upto = min(len(self.jobs), i + 1 + ahead)
                while self.submitted < upto:
                    j = self.jobs[self.submitted]
                    j[r] = self.engine.submit_n(j[2], self.n_draw, max_tokens=j[3], **self.sampling)
                    self.submitted += 1
        if len(job) == r + 1:  # first read: count it once, however many places share this piece
            outs = [o if isinstance(o, GenerationResult) else o.result() for o in job[r]]
            job.append(self._choose(job[2], outs))
        return job[r + 1]

    def _choose(self, ids, outs: List[GenerationResult]) -> Tuple[str, str]:
        """The translation of one piece: its only generation, or the MBR choice among its samples."""
        tr = self.tr
        done = [tr._finish_piece(ids, o) for o in outs]
        if len(done) > 1:  # every sample was generated: the prompt counts once, the samples all
            tr.stats["segments"] -= len(done) - 1
            tr.stats["prompt_tokens"] -= len(ids) * (len(done) - 1)
        return done[mbr_select([t for t, _ in done])]

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
