"""What scoring produces, per feature and per dictionary, and how it is written.

A folder of results holds:
    explanations.json   {feature id: {"text": readable explanation, "score", "detection_auroc",
                         sample sizes, "explanation": {terms, baseline, ...}}}  (dashboards read this)
    scores.json         {"summary": mean score, 95% CI, sample sizes, dead features;
                         "meta": config, hook, tokens, timings; "scores": {feature id: score}}
    llm_prompts.jsonl   every prompt an LLM was given and its answer (LLM explainer/simulator only)
    heldout_acts.safetensors   the scored units' activations on every held-out token (keep_heldout_acts only)
    cross_check/        the same three files for the units the cross-check scored again (another explainer)"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from analyses.scoring.explain import Explanation
from interp.files import write_json_atomic, write_safetensors_atomic, write_text_atomic

EXPLANATIONS_FILE = "explanations.json"
SCORES_FILE = "scores.json"
PROMPTS_FILE = "llm_prompts.jsonl"
CROSS_DIR = "cross_check"  # the cross-check's own explanations.json, scores.json and llm_prompts.jsonl
HELDOUT_FILE = "heldout_acts.safetensors"  # {"features" [F], "acts" [W, ctx, F] float16}: every held-out token


@dataclass
class FeatureScore:
    feature: int
    explanation: Explanation
    score: float  # top-and-random correlation on held-out tokens; 0 when undefined (see `defined`)
    defined: bool  # False when the simulation or the held-out truth was constant
    score_top: float | None  # the same correlation on the top examples alone, and on the random ones alone
    score_random: float | None
    detection_auroc: float | None  # None when the held-out contexts were all firing or all silent
    train_firing_examples: int  # train examples (stretches) where it fires
    train_max: float
    n_train_top: int
    n_train_random: int
    n_heldout_top: int
    n_heldout_random: int
    n_heldout_tokens: int
    n_firing_contexts: int
    n_silent_contexts: int
    simulation_prompts: list = field(default_factory=list)  # LLM simulator only: [{example, prompt, answer}]
    score_bands: float | None = None  # Anthropic-style: correlation on activation-band and silent examples
    n_band_examples: int = 0

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("explanation", "simulation_prompts")}
        out["text"] = self.explanation.text
        out["explanation"] = self.explanation.to_json()
        return out


@dataclass
class ScoreResult:
    scores: list[FeatureScore]
    dead: list[int]  # ids the caller named that never fire on the train split: not scored
    summary: dict
    meta: dict
    heldout: object = None  # the held-out SplitExamples, with all_acts, when ScoringConfig.keep_heldout_acts
    cross: ScoreResult | None = None  # the cross-check: some of the same units scored by another explainer (score_many)

    def by_feature(self) -> dict[int, FeatureScore]:
        return {s.feature: s for s in self.scores}

    def save(self, folder: str | Path) -> Path:
        """explanations.json ({feature id: explanation and scores}), scores.json (summary, sample
        sizes, config), and llm_prompts.jsonl when an LLM was asked anything."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / EXPLANATIONS_FILE, {str(s.feature): s.to_json() for s in self.scores})
        write_json_atomic(folder / SCORES_FILE, {"summary": self.summary, "dead": self.dead, "meta": self.meta,
                                                  "scores": {str(s.feature): s.score for s in self.scores}})
        if self.heldout is not None and self.heldout.all_acts is not None:
            write_safetensors_atomic(folder / HELDOUT_FILE, {"features": self.heldout.features, "acts": self.heldout.all_acts})
        prompts = [{"feature": s.feature, "kind": "explain", "prompt": s.explanation.prompt, "answer": s.explanation.answer}
                   for s in self.scores if s.explanation.prompt is not None]
        prompts += [{"feature": s.feature, "kind": "simulate", **p} for s in self.scores for p in s.simulation_prompts]
        if prompts:
            write_text_atomic(folder / PROMPTS_FILE, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in prompts))
        if self.cross is not None:
            self.cross.save(folder / CROSS_DIR)
        return folder
