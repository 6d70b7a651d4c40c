"""The README names the default model as it is: the GGUF file the offline loader reads, its
quantisation, and the float32 it is dequantised to."""

from pathlib import Path

from interp.models import smollm2

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_names_the_default_models_file_and_quantisation():
    name, quant = smollm2.GGUF.removesuffix(".gguf").rsplit(".", 1)  # SmolLM2-135M-Instruct, Q4_1
    assert name in README and f"{quant} GGUF" in README
    assert "dequantised to\nfloat32" in README or "dequantised to float32" in README
