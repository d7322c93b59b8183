"""A scripted model for the HTTP-layer tests: the real BatchEngine over a fake forward pass.

ScriptedModel is tests/fixtures/fake_lm.FakeModel (byte-level tokenizer with LFM2's special tokens
at LFM2's ids, generate/chat/batch from liquidlfm's GenerationMixin) whose native context is
ScriptedCtx, a Python stand-in for the C many-sequence context: decode_seqs() appends each chunk to
its sequence and answers, for the logits rows asked, a one-hot row choosing the next token of a
scripted reply. So everything above the forward pass (the scheduler, samplers, stop handling, the
server) is the real code, and the replies are known exactly:

- the reply to a chat prompt is script(last user message) (default: the message upper-cased), then
  <|im_end|>; special-token strings in the reply become their tokens, so a script can answer with
  "<|tool_call_start|>[f(a=1)]<|tool_call_end|>";
- a plain prompt (no chat template) is answered with "!" forever (until max_tokens / stops);
- gate: while cleared, decode_seqs blocks (a request holds its sequence as long as a test wants);
  step_delay: seconds each step takes (a stream that lasts);
- prompts: the text of every prompt prefilled, in order.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional

import numpy as np

from tests.fixtures.fake_lm import N_VOCAB, OFF, SPECIALS, FakeModel, FakeTokenizer


def _template() -> str:
    from liquidlfm.chat_template import LFM2_CHAT_TEMPLATE

    return LFM2_CHAT_TEMPLATE


class ScriptedTokenizer(FakeTokenizer):
    """FakeTokenizer with its holes (ids 14..99: no text) typed UNUSED, so generation never samples
    them, as it never samples a real vocabulary's padding."""

    def token_type(self, token_id):
        return 5 if len(SPECIALS) <= token_id < OFF else super().token_type(token_id)


class ScriptedCtx:
    def __init__(self, model: "ScriptedModel", n_seq: int, n_ctx: int, n_batch: int = 512):
        self.model = model
        self.n_seq, self.n_ctx, self.n_batch = n_seq, n_ctx, n_batch
        self.seqs: List[List[int]] = [[] for _ in range(n_seq)]
        self.prefilling = [True] * n_seq
        self.closed = False
        self.tokens_decoded = 0

    def decode_seqs(self, chunks):
        self.model.gate.wait()
        if self.model.step_delay:
            time.sleep(self.model.step_delay)
        rows = []
        for seq, ids, want in chunks:
            if len(self.seqs[seq]) + len(ids) > self.n_ctx:
                from liquidlfm import ContextFullError
                raise ContextFullError("scripted context full")
            self.seqs[seq].extend(int(t) for t in ids)
            self.tokens_decoded += len(ids)
            if want:
                if self.prefilling[seq]:  # the prompt is complete: record it as the model saw it
                    self.prefilling[seq] = False
                    self.model.prompts.append(FakeTokenizer().decode(self.seqs[seq]))
                rows.append(self.model.next_logits(self.seqs[seq]))
        return np.stack(rows) if rows else np.zeros((0, N_VOCAB), np.float32)

    def seq_reset(self, seq):
        self.seqs[seq] = []
        self.prefilling[seq] = True

    def seq_copy(self, src, dst):
        self.seqs[dst] = list(self.seqs[src])
        self.prefilling[dst] = self.prefilling[src]

    def seq_pos(self, seq):
        return len(self.seqs[seq])

    def close(self):
        self.closed = True


class ScriptedModel(FakeModel):
    """See the module docstring. script(user_text) -> reply text (may hold special-token strings)."""

    def __init__(self, script: Callable[[str], str] = str.upper, n_ctx_train: int = 4096):
        super().__init__(_template())
        self.tokenizer = ScriptedTokenizer()
        self.script = script
        self.gate = threading.Event()
        self.gate.set()
        self.step_delay = 0.0
        self.prompts: List[str] = []   # every prompt prefilled, as text (n > 1 shares one)
        self.path = "scripted"
        self.contexts: List[ScriptedCtx] = []

    def _native_ctx(self, *, n_ctx=None, n_batch=None, n_threads=None, kv_cache=None, n_seq: int = 1):
        ctx = ScriptedCtx(self, n_seq, n_ctx or 4096, n_batch or 512)
        self.contexts.append(ctx)
        return ctx

    def next_logits(self, ids: List[int]) -> np.ndarray:
        tok = FakeTokenizer()
        user = tok.encode("<|im_start|>user\n", add_special_tokens=False)
        asst = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)

        def rfind(seq):
            for i in range(len(ids) - len(seq), -1, -1):
                if ids[i:i + len(seq)] == seq:
                    return i
            return -1

        logits = np.zeros(N_VOCAB, dtype=np.float32)
        a, u = rfind(asst), rfind(user)
        if a < 0 or u < 0 or u > a:
            logits[tok.encode("!", add_special_tokens=False)[0]] = 30.0
            return logits
        content = tok.decode(ids[u + len(user):ids.index(7, u)])
        target = tok.encode(self.script(content), add_special_tokens=False, parse_special=True) + [7]
        gen = ids[a + len(asst):]
        # the reply continues after whatever the prompt already holds of it (a forced tool-call start)
        logits[target[len(gen)] if len(gen) < len(target) else 7] = 30.0
        return logits

    def close(self):
        pass

    @property
    def closed(self):
        return False
