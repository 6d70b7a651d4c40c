"""The "all at once" LLM simulator (Bills et al. 2023): every token's activation read from ONE
teacher-forced forward pass, no generation.

The prompt (a user turn) gives the explanation, the scale and a three-line demonstration; the
answer (the assistant turn) lists the example's tokens, one line each, as

    <token text>\\t\\n

and at each tab the model's next-token distribution over the ten answers "0".."9" is read: the
simulated activation is its expected value, renormalised over the ten, divided by 9 (so on 0-1).
Why 0-9 and not 0-10: SmolLM2's tokenizer (like Llama's) writes every digit as its own token, so
"10" would take two tokens and could not be read in one slot; the check in `answer_ids` refuses a
tokenizer whose digits are not single tokens. No value is written after a tab: the model never
sees its own earlier guesses, as with Bills et al.'s "unknown" placeholder.

The backend is a local Hugging Face model (analyses/scoring/llm.py LocalHF.slot_logits): the
prompt's prefix (everything before the first token line) is run once per explanation and its keys
and values reused; `batch_size` examples go through each forward. Every prompt and answer is kept
as the generating simulator keeps them (score.py writes llm_prompts.jsonl): the answer is the
expected value per token on the 0-9 scale."""

from __future__ import annotations

import torch

from analyses.scoring.examples import FeatureExamples
from analyses.scoring.explain import Explanation, token_decoder
from interp.errors import InterpError

SLOT_PROMPT = """A feature of a neural network language model has been explained as: {explanation}

Below, a text excerpt is listed one token per line. After each token and a tab, write the feature's activation on \
that token, from 0 (no response) to 9 (its strongest response). For example, for a feature explained as "the word \
cat", the excerpt " the cat sat" is answered:
 the\t0
 cat\t9
 sat\t0

Now the excerpt:"""

SCALE = 9  # the answers are "0".."9"


def answer_ids(tokenizer) -> list[int]:
    """The token ids of "0".."9"; one clear line if a digit is not a single token."""
    ids = [tokenizer(str(d), add_special_tokens=False)["input_ids"] for d in range(SCALE + 1)]
    bad = [d for d, i in enumerate(ids) if len(i) != 1]
    if bad:
        raise InterpError(f"the simulator's tokenizer writes the digit {bad[0]} as {len(ids[bad[0]])} tokens; the all-at-once "
                          "simulator needs one token per answer (use an OpenAI-compatible endpoint instead).")
    return [i[0] for i in ids]


def shown(text: str) -> str:
    """A token as it appears on its line: line breaks and tabs written as \\n and \\t."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


class SlotSimulator:
    """simulate(explanation, examples) -> [n, L] on 0-1, from ceil(n / batch_size) forwards (plus one
    for the prompt's prefix when the explanation changes)."""

    def __init__(self, llm, tokenizer=None, batch_size: int = 8):
        self.llm = llm
        self.backend = getattr(llm, "backend", llm)  # the LocalHF under a CachedLLM
        if not hasattr(self.backend, "slot_logits"):
            raise InterpError(f"the all-at-once simulator needs a local model (--llm-backend hf), not {llm.name}.")
        self.decode, self.batch_size = token_decoder(tokenizer), batch_size
        self.name = f"llm all-at-once ({llm.name})"
        self._prompts: list[dict] = []
        self._answers = None
        self._lines: dict[int, list[int]] = {}

    def _line(self, t: int) -> list[int]:
        """Token ids of a token's line up to and including its tab."""
        if t not in self._lines:
            tok = self.backend.tokenizer
            self._lines[t] = tok(shown(self.decode(t)), add_special_tokens=False)["input_ids"] + self._tab
        return self._lines[t]

    def suffix(self, tokens: list[int]) -> tuple[list[int], list[int]]:
        """(the answer's token ids, the position of each token's tab in them)."""
        ids, slots = list(self._start), []
        for t in tokens:
            ids += self._line(t)
            slots.append(len(ids) - 1)
            ids += self._newline
        return ids, slots

    def _setup(self) -> None:
        tok = self.backend.tokenizer
        self._answers = answer_ids(tok)
        self._tab = tok("\t", add_special_tokens=False)["input_ids"]
        self._newline = tok("\n", add_special_tokens=False)["input_ids"]
        self._start = []  # the answer (the assistant turn) begins with the first token line

    def simulate(self, explanation: Explanation, ex: FeatureExamples) -> torch.Tensor:  # [n, L] on 0-1
        if self._answers is None:
            self._setup()
        tok = self.backend.tokenizer
        prefix = self.backend.chat_ids(SLOT_PROMPT.format(explanation=explanation.text))
        out = torch.zeros(ex.tokens.shape)
        digits = torch.arange(SCALE + 1, dtype=torch.float32)
        rows = [(i, ex.tokens[i][ex.valid[i]].tolist()) for i in range(len(ex.tokens))]
        rows = [(i, t) for i, t in rows if t]
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            built = [self.suffix(t) for _, t in batch]
            logits = self.backend.slot_logits(prefix, [s for s, _ in built], [p for _, p in built], self._answers)
            for (i, _), (ids, _), lg in zip(batch, built, logits):
                expected = torch.softmax(lg.double(), -1).float() @ digits  # [n tokens] on 0-9
                out[i, ex.valid[i]] = expected / SCALE
                self._prompts.append({"example": i, "mode": "all-at-once", "prompt": tok.decode(prefix + ids),
                                      "answer": [round(float(v), 3) for v in expected], "tokens_read": len(expected)})
        return out

    def take_prompts(self) -> list[dict]:
        taken, self._prompts = self._prompts, []
        return taken
