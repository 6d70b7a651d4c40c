"""Loading models as TransformerLens HookedTransformers: by TransformerLens name (through the
Hugging Face Hub), from a local Hugging Face folder, or the offline default SmolLM2-135M."""

from interp.models.fetch import OFFLINE_MODELS, fetch_model, is_fetched, offline_model_dir
from interp.models.load import find_model, load_model, model_ref
from interp.models.processing import check_processing, saelens_metadata

__all__ = ["OFFLINE_MODELS", "fetch_model", "is_fetched", "find_model", "load_model", "model_ref", "offline_model_dir", "saelens_metadata",
           "check_processing"]
