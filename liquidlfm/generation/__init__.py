"""Text generation on top of the engine: generate / stream / chat / apply_chat_template.

    model = liquidlfm.load("LiquidAI/LFM2-350M")
    text = model.generate("Once upon a time", max_tokens=64, seed=0)      # a str (GenerationResult)
    for chunk in model.stream("Once upon a time", max_tokens=64):
        print(chunk.text, end="")                                          # + chunk.token_ids,
                                                                           #   .finish_reason, .stats
    reply = model.chat([{"role": "user", "content": "Hi"}])

Sampling defaults come from the model's generation_config (temperature, top_k, top_p, min_p,
repetition_penalty, do_sample, max_new_tokens), else Liquid's recommended values for LFM2
(temperature 0.3, min_p 0.15, repetition_penalty 1.05). temperature=0 is greedy.

Generation stops on the model's control tokens by id (eos, <|im_end|>, <|endoftext|>; never printed),
on user stop strings (matched across token boundaries and never printed; the first to complete wins),
after max_tokens, or when the context is full (finish_reason "length"). A prompt that does not fit
raises ContextFullError; nothing is ever truncated silently.

Sessions: every thread gets its own session per model (so one model can serve several threads);
pass session= to use your own. Each session owns a prefix cache (Session.prefix_cache): a new prompt
that extends the tokens it holds (the next chat turn) only prefills the new tokens; chat() also keeps
state snapshots at turn boundaries (LFM2's conv state cannot be rewound) and restores the longest one
that is a prefix of the new prompt; cache_prefix= keeps one for a shared prompt prefix. A session used
by two threads at once raises RuntimeError. Ctrl-C (KeyboardInterrupt) is raised between tokens and
leaves the session consistent.

Structured output: response_format= (OpenAI's json_object / json_schema, plus regex and Lark
grammar) or constraint= (a Constraint) keeps the output inside a grammar; llguidance computes the
allowed tokens, the C sampler masks the rest (constrain.py; pip install "liquidlfm[structured]").

A list of prompts (model.generate([...]), model.chat([conv, ...])) runs as a batch: up to n_seq
sequences decoded together, one forward pass per step (batch.BatchEngine, also model.batch()).

Modules: batch (continuous batching), emit (tokens to chunks and finish reasons), params (sampling parameters), constrain (structured output), streaming (UTF-8-safe detokenizing), stops (stop strings),
cache (the session's prefix cache), session_file (state files), results (Chunk, GenerationResult,
GenerationStats), api (the generate/stream/chat mixin).
"""
from .api import GenerationHost, GenerationMixin, GenerationTokenizer
from .cache import CachedSession, PrefixCache
from .constrain import Constraint
from .params import DEFAULT_MAX_TOKENS, RECOMMENDED_SAMPLING, SamplingParams, resolve_sampling
from .results import Chunk, GenerationResult, GenerationStats
from .session_file import load_session, save_session
from .stops import StopMatcher
from .streaming import StreamDecoder

__all__ = [
    "GenerationMixin",
    "GenerationHost",
    "GenerationTokenizer",
    "CachedSession",
    "PrefixCache",
    "Constraint",
    "GenerationStats",
    "Chunk",
    "GenerationResult",
    "SamplingParams",
    "resolve_sampling",
    "StopMatcher",
    "StreamDecoder",
    "save_session",
    "load_session",
    "RECOMMENDED_SAMPLING",
    "DEFAULT_MAX_TOKENS",
]
