"""SAE folders exchanged with SAELens 6.54.12, both ways, for standard (relu), topk and jumprelu,
and a SAELens checkpoint of an "expected_average_only_in" SAE read here.

Runs INSIDE the overlay venv that holds sae-lens (scripts/saelens_env.sh), with the repo root
on PYTHONPATH; tests/test_saelens_interop.py starts it. Prints one line per case,
    case <arch> <direction> encode=<max abs diff> decode=<max abs diff> fired=<fraction> OK|MISMATCH
and exits 1 if any case is off by more than TOL.

The SAEs carry the options our loader must fold into its one equation (apply_b_dec_to_input
false, rescale_acts_by_decoder_norm, an activation scale, unnormalised decoder rows), so a
loader that ignored them would fail here."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from sae_lens import SAE as SaeLensSAE
from sae_lens import JumpReLUSAE, StandardSAE, TopKSAE
from sae_lens.saes.jumprelu_sae import JumpReLUSAEConfig
from sae_lens.saes.standard_sae import StandardSAEConfig
from sae_lens.saes.topk_sae import TopKSAEConfig
from sae_lens.training.activation_scaler import ActivationScaler

import sae as interp_sae

TOL = 1e-5
D_IN, D_SAE, K = 16, 64, 8
N_TOKENS = 256
HOOK, MODEL = "blocks.3.hook_resid_post", "roundtrip-model"


def _randomise(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Every parameter to random values of the size trained SAEs have (latents and
    reconstructions O(1), so TOL is about 100 float32 roundings); biases too, so b_dec matters."""
    scale = {"W_enc": D_IN ** -0.5, "W_dec": 1.0, "b_enc": 0.3, "b_dec": 0.3}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale.get(name, 1.0))


def saelens_sae(arch: str, gen: torch.Generator) -> torch.nn.Module:
    meta = dict(hook_name=HOOK, model_name=MODEL)
    if arch == "standard":
        # b_dec not subtracted from the input: our loader folds it into b_enc
        sl = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=False))
    elif arch == "topk":
        # topk picks by pre * ||W_dec[i]||: our loader folds the norms into the weights
        sl = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, rescale_acts_by_decoder_norm=True))
    else:
        sl = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE))
    for key, value in meta.items():
        setattr(sl.cfg.metadata, key, value)
    _randomise(sl, gen)
    with torch.no_grad():
        sl.W_dec.div_(sl.W_dec.norm(dim=1, keepdim=True)).mul_(torch.rand(D_SAE, 1, generator=gen) + 0.5)  # rows of varied norm
        if arch == "jumprelu":
            sl.threshold.copy_(torch.rand(D_SAE, generator=gen) * 0.5)
    return sl.eval()


def interp_sae_random(arch: str, gen: torch.Generator) -> interp_sae.SAE:
    ours = interp_sae.create_sae(interp_sae.SAEConfig(
        "relu" if arch == "standard" else arch, d_in=D_IN, d_sae=D_SAE, k=K if arch == "topk" else None,
        hook_name=HOOK, model_name=MODEL, activation_scale=2.5,
    ))
    _randomise(ours, gen)
    with torch.no_grad():
        if arch == "standard":
            ours.W_dec.div_(ours.W_dec.norm(dim=1, keepdim=True)).mul_(torch.rand(D_SAE, 1, generator=gen) + 0.5)  # relu: unnormalised rows
        else:
            ours.W_dec.div_(ours.W_dec.norm(dim=1, keepdim=True))  # topk/jumprelu keep unit rows
        if arch == "jumprelu":
            ours.log_threshold.copy_(torch.rand(D_SAE, generator=gen).mul(1.5).clamp_min(0.05).log())
    return ours.eval()


def _report(arch: str, direction: str, enc: float, dec: float, fired: float) -> bool:
    # a case where no latent (or every latent) fires would test nothing about the activation
    ok = enc <= TOL and dec <= TOL and 0.0 < fired < 1.0
    print(f"case {arch} {direction} encode={enc:.2e} decode={dec:.2e} fired={fired:.3f} {'OK' if ok else 'MISMATCH'}")
    return ok


@torch.no_grad()
def saelens_to_interp(arch: str, folder: Path, gen: torch.Generator) -> bool:
    sl = saelens_sae(arch, gen)
    sl.save_model(folder)
    ours = interp_sae.load_sae(folder, device="cpu")
    x = torch.randn(N_TOKENS, D_IN, generator=gen)  # [N, d_in]
    z_sl, z_ours = sl.encode(x), ours.encode(x)  # [N, d_sae], same units: the folds keep latents
    z = z_sl.clone()
    z[z != 0] = torch.rand(int((z != 0).sum()), generator=gen)   # decode other latents too
    enc = (z_sl - z_ours).abs().max().item()
    dec = (sl.decode(z) - ours.decode(z)).abs().max().item()
    return _report(arch, "saelens->interp", enc, dec, (z_sl != 0).float().mean().item())


@torch.no_grad()
def interp_to_saelens(arch: str, folder: Path, gen: torch.Generator) -> bool:
    ours = interp_sae_random(arch, gen)
    interp_sae.save_sae(ours, folder)
    sl = SaeLensSAE.load_from_disk(folder, device="cpu").eval()
    x = torch.randn(N_TOKENS, D_IN, generator=gen)  # [N, d_in]
    # Saving moves latents to raw-input units with unit decoder rows: z_saved = z * ||W_dec[i]|| / s.
    s = ours.cfg.activation_scale
    n = ours.W_dec.norm(dim=1)  # [d_sae]
    z_ours, z_sl = ours.encode(x), sl.encode(x)
    enc = (z_ours * n / s - z_sl).abs().max().item()
    z = torch.rand(N_TOKENS, D_SAE, generator=gen) * (torch.rand(N_TOKENS, D_SAE, generator=gen) < 0.2)
    dec = (ours.decode(z * s / n) - sl.decode(z)).abs().max().item()
    dec = max(dec, (ours(x) - sl(x)).abs().max().item())  # the full round trip, too
    return _report(arch, "interp->saelens", enc, dec, (z_sl != 0).float().mean().item())


@torch.no_grad()
def saelens_scaled_to_interp(folder: Path, gen: torch.Generator) -> bool:
    """A SAELens checkpoint trained with normalize_activations="expected_average_only_in": the
    weights read inputs times the factor in activation_scaler.json, and SAELens's own
    fold_activation_norm_scaling_factor gives the SAE on raw inputs that ours must equal."""
    sl = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations="expected_average_only_in"))
    for key, value in dict(hook_name=HOOK, model_name=MODEL).items():
        setattr(sl.cfg.metadata, key, value)
    _randomise(sl, gen)
    sl.save_model(folder)
    scale = 2.9
    ActivationScaler(scaling_factor=scale).save(str(folder / "activation_scaler.json"))
    sl.fold_activation_norm_scaling_factor(scale)
    ours = interp_sae.load_sae(folder, device="cpu")
    x = torch.randn(N_TOKENS, D_IN, generator=gen) * 0.3  # raw inputs, smaller than the scaled ones
    z_sl, z_ours = sl.encode(x), ours.encode(x)
    enc = (z_sl - z_ours).abs().max().item()
    dec = (sl.decode(z_sl) - ours.decode(z_sl)).abs().max().item()
    return _report("standard-expected_average_only_in", "saelens->interp", enc, dec, (z_sl != 0).float().mean().item())


def main() -> int:
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i, arch in enumerate(("standard", "topk", "jumprelu")):
            gen = torch.Generator().manual_seed(100 + i)
            ok &= saelens_to_interp(arch, Path(tmp) / f"{arch}-saelens", gen)
            ok &= interp_to_saelens(arch, Path(tmp) / f"{arch}-interp", gen)
        ok &= saelens_scaled_to_interp(Path(tmp) / "scaled-saelens", torch.Generator().manual_seed(200))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
