"""Sparse autoencoders: architectures (relu, topk, batchtopk, jumprelu), training, metrics, and
the SAELens-compatible folder format.

    sae = create_sae(SAEConfig("topk", d_in=576, d_sae=4608, k=32, hook_name=..., model_name=...))
    sae = train_sae(sae, batches, TrainConfig(steps=5000), "runs/sae")  # batches(start_step) -> iterator
    sae = load_sae("runs/sae"); z = sae.encode(x); x_hat = sae.decode(z)
    metrics = evaluate_sae(sae, model, token_windows)

Acting on features: splice SAEs in, edit units, generate default vs steered text.

    with spliced(model, {hook: sae}, error_term=True): model.run_with_cache(tokens)  # {hook}.hook_sae_*
    with apply(model, [Clamp(Latent(hook, 42, sae=sae), 5.0), Ablate(Neuron(1, 7), positions="firing")]): ...
    g = generate(model, prompt, [Add(Direction(hook, v), 4.0)], seed=0)  # g.default, g.steered
"""

from sae.base import SAE
from sae.config import SAEConfig, TrainConfig
from sae.errors import SAEError, TrainingDiverged
from sae.evaluate import evaluate_sae
from sae.generate import Continuation, Generation, Step, generate, generate_stream
from sae.interventions import Ablate, Add, Applied, Clamp, apply, apply_stacked
from sae.io import load_sae, save_sae
from sae.loop import train_sae, train_saes
from sae.registry import (
    ARCHITECTURES,
    architecture_names,
    create_sae,
    get_architecture,
    register,
)
from sae.splice import PARTS as SPLICE_PARTS
from sae.splice import spliced, spliced_sae
from sae.trainer import Trainer
from sae.units import Direction, Latent, Neuron

__all__ = [
    "ARCHITECTURES",
    "SAE",
    "SPLICE_PARTS",
    "Ablate",
    "Add",
    "Applied",
    "Clamp",
    "Continuation",
    "Direction",
    "Generation",
    "Latent",
    "Neuron",
    "SAEConfig",
    "SAEError",
    "Step",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "apply",
    "apply_stacked",
    "architecture_names",
    "create_sae",
    "evaluate_sae",
    "generate",
    "generate_stream",
    "get_architecture",
    "load_sae",
    "register",
    "save_sae",
    "spliced",
    "spliced_sae",
    "train_sae",
    "train_saes",
]
