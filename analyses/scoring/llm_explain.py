"""The optional LLM explainer and simulator: the same roles as the token ones, asked in words.

The explainer shows an LLM a feature's top train examples, each token's activation on a 0-10 scale
(10 = the train max), and asks for one sentence. The simulator shows it an explanation (any: an
LLM's sentence or the token explainer's list) and one held-out example as numbered tokens, and
asks for every token's activation on the same scale; one prompt per example, as in Bills et al.
Every prompt and answer is kept: the explanation's on the Explanation, the simulator's through
`take_prompts()` (score.py writes them to llm_prompts.jsonl)."""

from __future__ import annotations

import json
import re

import torch

from analyses.scoring.examples import FeatureExamples
from analyses.scoring.explain import Explanation, token_decoder

EXPLAIN_PROMPT = """You are studying one feature of a neural network language model. A feature responds to some \
particular kind of token or context in text. Below are the text excerpts where it responds most strongly. After \
each excerpt, the tokens it responds to are listed with their activation on a scale of 0 to 10 (10 is its \
strongest response; tokens at 0 are not listed).

{examples}

In one short sentence, say what this feature responds to. Answer with the sentence only."""

SIMULATE_PROMPT = """A feature of a neural network language model has been explained as: {explanation}

Below is a text excerpt split into numbered tokens. For every token, predict the feature's activation on a scale \
of 0 (no response) to 10 (its strongest response). Answer with one line per token, in order, each line the token's \
number, a tab, and the activation, and nothing else.

{tokens}"""

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _scale(acts: torch.Tensor, top: float) -> torch.Tensor:
    return (acts.clamp(min=0) / max(top, 1e-12) * 10).round().to(torch.int64)


class LLMExplainer:
    name = "llm"

    def __init__(self, llm, tokenizer=None, n_examples: int = 10):
        self.llm, self.decode, self.n_examples = llm, token_decoder(tokenizer), n_examples
        self.name = f"llm ({llm.name})"

    def prompt(self, ex: FeatureExamples) -> str:
        n = min(self.n_examples, ex.n_top)
        top = float(ex.acts[:n].clamp(min=0).max()) if n else 0.0
        blocks = []
        for i in range(n):
            v = ex.valid[i]
            toks, levels = ex.tokens[i][v].tolist(), _scale(ex.acts[i][v], top).tolist()
            text = "".join(self.decode(t) for t in toks)
            lines = [f"{json.dumps(self.decode(t), ensure_ascii=False)}\t{a}" for t, a in zip(toks, levels) if a > 0]
            blocks.append(f"Excerpt {i + 1}: {json.dumps(text, ensure_ascii=False)}\n" + "\n".join(lines))
        return EXPLAIN_PROMPT.format(examples="\n\n".join(blocks))

    def explain(self, ex: FeatureExamples) -> Explanation:
        prompt = self.prompt(ex)
        answer = self.llm.complete(prompt)
        return Explanation(text=parse_explanation(answer), explainer=self.name, prompt=prompt, answer=answer)


def parse_explanation(answer: str) -> str:
    """The first non-empty line, without a leading 'Explanation:' or surrounding quotes."""
    for line in answer.strip().splitlines():
        line = re.sub(r"^\s*(explanation|answer)\s*:\s*", "", line.strip(), flags=re.I).strip().strip('"').strip()
        if line:
            return line
    return "(the LLM gave no explanation)"


class LLMSimulator:
    def __init__(self, llm, tokenizer=None):
        self.llm, self.decode = llm, token_decoder(tokenizer)
        self.name = f"llm ({llm.name})"
        self._prompts: list[dict] = []

    def prompt(self, explanation: Explanation, tokens: list[int]) -> str:
        lines = "\n".join(f"{i}\t{json.dumps(self.decode(t), ensure_ascii=False)}" for i, t in enumerate(tokens))
        return SIMULATE_PROMPT.format(explanation=explanation.text, tokens=lines)

    def simulate(self, explanation: Explanation, ex: FeatureExamples) -> torch.Tensor:  # [n, L] on 0-1
        out = torch.zeros(ex.tokens.shape)
        for i in range(len(ex.tokens)):
            v = ex.valid[i]
            toks = ex.tokens[i][v].tolist()
            prompt = self.prompt(explanation, toks)
            answer = self.llm.complete(prompt)
            values, n_read = parse_simulation(answer, len(toks))
            out[i, v] = values / 10
            self._prompts.append({"example": i, "prompt": prompt, "answer": answer, "tokens_read": n_read})
        return out

    def take_prompts(self) -> list[dict]:
        taken, self._prompts = self._prompts, []
        return taken


def parse_simulation(answer: str, n: int) -> tuple[torch.Tensor, int]:
    """(activations [n] on 0-10, how many tokens the answer gave). A line "i<TAB>a" sets token i;
    a line with a lone number sets the next token; tokens the answer skipped stay 0."""
    out = torch.zeros(n)
    seen = set()
    nxt = 0
    for line in answer.splitlines():
        nums = _NUMBER.findall(line)
        if not nums:
            continue
        if len(nums) >= 2 and float(nums[0]).is_integer():
            i, a = int(float(nums[0])), float(nums[-1])
        else:
            i, a = nxt, float(nums[-1])
        if 0 <= i < n:
            out[i] = min(max(a, 0.0), 10.0)
            seen.add(i)
        nxt = i + 1
    return out, len(seen)
