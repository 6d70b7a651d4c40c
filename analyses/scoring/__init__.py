"""Interpretability scores for SAE features and neurons (Bills et al. 2023; detection after delphi).

    from analyses.scoring import score_features, ScoringConfig
    result = score_features(dictionary, train_batches, heldout_batches, cfg=ScoringConfig(n_features=64))
    result.save("runs/scores")  # explanations.json, scores.json

Files: examples.py (the streaming passes), explain.py and simulate.py (the deterministic explainer
and simulator), detection.py (AUROC), stats.py (bootstrap CI, sampling, dead features), llm.py and
llm_explain.py (optional LLM explainer and simulator), score.py (the whole), results.py (the files)."""

from analyses.scoring.detection import detection_auroc
from analyses.scoring.examples import FeatureExamples, SplitExamples, collect_examples, collect_many
from analyses.scoring.explain import Explanation, Term, TokenExplainerConfig, explain_tokens
from analyses.scoring.results import FeatureScore, ScoreResult
from analyses.scoring.score import (
    ScoringConfig,
    TokenExplainer,
    TokenSimulator,
    make_scorers,
    score_examples,
    score_features,
    score_many,
)
from analyses.scoring.simulate import simulate_tokens
from analyses.scoring.stats import bootstrap_ci, pearson, sample_live, sample_per_layer

__all__ = [
    "FeatureExamples", "SplitExamples", "collect_examples", "collect_many", "Explanation", "Term", "TokenExplainerConfig",
    "explain_tokens", "simulate_tokens", "detection_auroc", "bootstrap_ci", "pearson", "sample_live",
    "sample_per_layer", "FeatureScore", "ScoreResult", "ScoringConfig", "TokenExplainer", "TokenSimulator",
    "score_examples", "score_features", "score_many", "make_scorers",
]
