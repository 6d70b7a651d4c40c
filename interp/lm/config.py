"""What a from-scratch language model is (LMConfig) and how it is trained (TrainLMConfig)."""

from __future__ import annotations

from dataclasses import dataclass

from interp.configs import DictConfig
from interp.errors import InterpError

ARCHS = ("gpt2", "crate")


@dataclass
class LMConfig(DictConfig):
    arch: str = "gpt2"  # gpt2 | crate
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    n_ctx: int = 128
    d_vocab: int = 4096
    d_mlp: int | None = None  # None: 4 * d_model (CRATE: the dictionary size, always 4 * d_model in the paper)
    eta: float = 0.1  # CRATE's ISTA step size
    lambd: float = 0.1  # CRATE's sparsity penalty
    act_fn: str = "gelu_new"  # GPT-2's MLP nonlinearity (unused by CRATE)
    seed: int = 0  # weight initialisation

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise InterpError(f"unknown architecture {self.arch!r}; choose gpt2 or crate.")
        if min(self.n_layers, self.d_model, self.n_heads, self.n_ctx, self.d_vocab) < 1:
            raise InterpError("layers, d_model, heads, context and vocabulary must all be at least 1.")
        if self.d_model % self.n_heads:
            raise InterpError(f"d_model ({self.d_model}) must be a multiple of the number of heads ({self.n_heads}).")
        if self.d_mlp is None:
            self.d_mlp = 4 * self.d_model

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def hooked_config(self, name: str = "lm"):
        """The HookedTransformerConfig of this model. CRATE's blocks are swapped in by build_model;
        its d_mlp is the width of the sparse code, so tools that size mlp.hook_post read it here."""
        from transformer_lens import HookedTransformerConfig

        return HookedTransformerConfig(
            n_layers=self.n_layers, d_model=self.d_model, n_heads=self.n_heads, d_head=self.d_head,
            d_mlp=self.d_mlp, d_vocab=self.d_vocab, n_ctx=self.n_ctx,
            act_fn="relu" if self.arch == "crate" else self.act_fn,
            normalization_type="LN", positional_embedding_type="standard",
            model_name=name, tokenizer_name=None, default_prepend_bos=True,
            init_weights=False,  # build_model initialises, nanoGPT-style
            dtype=__import__("torch").float32,
        )


@dataclass
class TrainLMConfig(DictConfig):
    tokens: int = 2_000_000  # training tokens (steps = tokens / (batch_size * n_ctx))
    batch_size: int = 32  # windows per step
    lr: float = 2e-3  # peak AdamW learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1  # on matrices and embeddings, not on biases and norms (nanoGPT)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 50  # steps between held-out evaluations
    eval_tokens: int = 65_536  # held-out tokens per evaluation (the same windows every time)
    checkpoint_every: int = 100
    heldout_fraction: float = 0.05
    seed: int = 0  # data order

    def steps(self, n_ctx: int) -> int:
        return max(1, self.tokens // (self.batch_size * n_ctx))

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.tokens < 1:
            raise InterpError("the batch size and the number of tokens must be at least 1.")
        if self.lr <= 0:
            raise InterpError(f"the learning rate must be positive, not {self.lr}.")
        if min(self.eval_every, self.checkpoint_every) < 1:
            raise InterpError("--eval-every and --checkpoint-every must be at least 1 step.")
