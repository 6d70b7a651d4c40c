"""Sparse autoencoders: architectures (relu, topk, batchtopk, jumprelu), training, metrics, and
the SAELens-compatible folder format.

    sae = create_sae(SAEConfig("topk", d_in=576, d_sae=4608, k=32, hook_name=..., model_name=...))
    sae = train_sae(sae, batches, TrainConfig(steps=5000), "runs/sae")  # batches(start_step) -> iterator
    sae = load_sae("runs/sae"); z = sae.encode(x); x_hat = sae.decode(z)
    metrics = evaluate_sae(sae, model, token_windows)
"""

from sae.base import SAE
from sae.config import SAEConfig, TrainConfig
from sae.errors import SAEError, TrainingDiverged
from sae.evaluate import evaluate_sae
from sae.io import load_sae, save_sae
from sae.loop import train_sae, train_saes
from sae.registry import ARCHITECTURES, architecture_names, create_sae, get_architecture, register
from sae.trainer import Trainer

__all__ = [
    "SAE", "SAEConfig", "TrainConfig", "SAEError", "TrainingDiverged", "load_sae", "save_sae",
    "train_sae", "train_saes", "evaluate_sae", "ARCHITECTURES", "architecture_names", "create_sae",
    "get_architecture", "register", "Trainer",
]
