"""TransformerLens's weight processing: what `from_pretrained` does to a model's weights by default
(fold_ln, center_writing_weights, center_unembed, fold_value_biases) and what
`from_pretrained_no_processing` leaves out. The processing changes the activations at most hook
points (a folded LayerNorm, a centred residual stream), so an SAE records which one it read, as
SAELens's cfg.json does (metadata.model_from_pretrained_kwargs), and is refused on a model
processed otherwise."""

from __future__ import annotations

from interp.errors import InterpError

TL_PROCESSING = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True}
NO_PROCESSING = {k: False for k in TL_PROCESSING}


def processing_kwargs(processing: bool) -> dict[str, bool]:
    """The from_pretrained keyword arguments of a processed (True) or unprocessed (False) load."""
    return dict(TL_PROCESSING if processing else NO_PROCESSING)


def saelens_metadata(model) -> dict:
    """What SAELens's cfg.json metadata says about the model activations come from: BOS handling and
    the TransformerLens processing of its weights (every recording and every SAE carries it)."""
    return {"prepend_bos": bool(model.cfg.default_prepend_bos),
            "model_from_pretrained_kwargs": dict(getattr(model, "from_pretrained_kwargs", TL_PROCESSING))}


def effective(kwargs: dict | None) -> dict[str, bool]:
    """What from_pretrained does given `kwargs` (SAELens's model_from_pretrained_kwargs): the four
    settings, TransformerLens's defaults where `kwargs` says nothing."""
    return {k: bool((kwargs or {}).get(k, default)) for k, default in TL_PROCESSING.items()}


def describe(kwargs: dict | None) -> str:
    e = effective(kwargs)
    if all(e.values()):
        return "TransformerLens's default weight processing"
    if not any(e.values()):
        return "no weight processing"
    return "weight processing " + ", ".join(f"{k}={v}" for k, v in e.items())


def processing_setting(model) -> dict:
    """What a run's settings.json says of the model's processing: nothing for TransformerLens's default
    (so that the settings of runs made before this was recorded still match), the four flags otherwise."""
    e = effective(getattr(model, "from_pretrained_kwargs", TL_PROCESSING))
    return {} if all(e.values()) or not getattr(model, "processing_applies", True) else {"processing": e}


def check_processing(what: str, kwargs: dict | None, model) -> None:
    """Refuse, in one line, `what` (an SAE, a cache) whose activations came from a model processed
    otherwise than `model`. Nothing to check when `what` records no processing, or when the model
    has one form only (a model trained here: its weights are always used as trained)."""
    if kwargs is None or not getattr(model, "processing_applies", True):
        return
    theirs, ours = effective(kwargs), effective(getattr(model, "from_pretrained_kwargs", TL_PROCESSING))
    if theirs == ours:
        return
    if not any(theirs.values()):
        fix = "load the model with --no-processing"
    elif all(theirs.values()):
        fix = "load the model without --no-processing"
    else:
        fix = "interp loads a model fully processed or, with --no-processing, not at all, so this one cannot be matched"
    raise InterpError(f"{what} read activations of {model.cfg.model_name} with {describe(theirs)}, but the model is loaded "
                      f"with {describe(ours)}: the activations differ; {fix}.")
