# One command for the main job (make demo), one for the tests (make test).
# Both create the virtual environment when missing and fetch the offline model and text.

SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# keep pip's warnings about absent local mirrors out of the way
PIP    := $(PY) -m pip -q --no-input

SAELENS_VENV ?= .venv-saelens
.PHONY: setup fetch demo test bench clean saelens-env

setup: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0 2>&1 | { grep -v "is ignored" || true; }
	$(PIP) install -e '.[dev]' 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -c "import torch, transformer_lens, interp, sae, analyses"
	$(PY) -c "from sae import native; native.kernels()"  # builds the TopK step's C++ kernels now, not at the first step
	touch $@

fetch: setup
	$(PY) -m interp fetch model smollm2-135m
	$(PY) -m interp fetch text

# The quickstart on the offline default model (SmolLM2-135M, 30 layers): record three layers in
# one pass, train an SAE on the middle one from that cache, evaluate it, build its dashboards,
# then a small neurons-vs-SAE-features depth comparison.
DEMO := runs/demo
demo: fetch
	$(PY) -m interp record --model smollm2-135m --layers 5,10,15 --site resid_post --tokens 32768 --out $(DEMO)/acts
	$(PY) -m interp info $(DEMO)/acts
	$(PY) -m interp train-sae --activations $(DEMO)/acts --layer 15 --arch topk --k 32 --expansion 8 \
		--tokens 614400 --batch-size 2048 --out $(DEMO)/sae
	$(PY) -m interp eval-sae $(DEMO)/sae --tokens 8192
	$(PY) -m interp dashboard $(DEMO)/sae --cache $(DEMO)/acts --features 0-199 --out $(DEMO)/dashboard
	$(PY) -m interp compare-layers --model smollm2-135m --layers 2,8,14 --site mlp_post --arch topk --k 16 \
		--expansion 2 --tokens 16384 --heldout-tokens 8192 --sae-tokens 32768 --batch-size 512 --lr 2e-3 \
		--eval-tokens 512 --features-per-layer 20 --out $(DEMO)/depth
	@echo "dashboard: file://$(abspath $(DEMO))/dashboard/index.html"
	@echo "depth report: file://$(abspath $(DEMO))/depth/report.html"
	@echo "live dashboard (type text, steer features): $(PY) -m interp serve $(DEMO)/sae --dashboard $(DEMO)/dashboard"

# sae-lens lives in an overlay venv that sees $(VENV)'s torch and transformer-lens, for the
# interop test (tests/test_saelens_interop.py) and the side-by-side benchmarks.
saelens-env: setup
	scripts/saelens_env.sh $(SAELENS_VENV) $(VENV)

# ruff first (lint only: formatting is not enforced yet); tests/test_layers.py checks the floors
test: fetch saelens-env
	$(VENV)/bin/ruff check .
	INTERP_SAELENS_VENV=$(abspath $(SAELENS_VENV)) $(PY) -m pytest -q

# The quick benchmarks (606 s on 2 cores under /work/logs/quiet, 2026-12-03, with record.py at 275 s; record.py is now
# 101 s at 2048 tokens x 7 rounds without the (d) rounds, 2026-12-04: see bench/results/README.md); each writes
# its table to bench/results/<script>.md with the commit it measured, torch's thread count, the load
# average and median [min, max] over interleaved repeats. The slow ones run by hand with --results
# (memory: 4 GB cache; dashboard, scale, scoring at full size, sae_quality, distributed_agreement,
# the sae-lens side by side): see each script's docstring.
BENCH := $(PY) bench
bench: setup
	date -u +%T; time -p $(BENCH)/sae_train.py --d-in 576 --archs topk batchtopk topk+auxk --steps 12 --threads 1 --results
	date -u +%T; time -p $(BENCH)/step_parts.py --archs topk batchtopk --threads 1 --steps 16 --results
	date -u +%T; time -p $(BENCH)/sae_step_variants.py --archs topk batchtopk --steps 6 --results
	date -u +%T; time -p $(BENCH)/record.py --models gpt2-small,smollm2-135m --tokens 2048 --repeats 7 --no-d --results
	date -u +%T; time -p $(BENCH)/startup.py --repeats 5 --results
	date -u +%T; time -p $(BENCH)/generate.py --tokens 8 --repeats 3 --results
	date -u +%T; time -p $(BENCH)/eval_sae.py --windows 4 --repeats 3 --results
	date -u +%T; time -p $(BENCH)/serve.py --tokens 8 --requests 20 --repeats 3 --results
	date -u +%T; time -p $(BENCH)/verify.py --tokens 8192 --repeats 3 --results
	date -u +%T; time -p $(BENCH)/scoring.py --tokens 16384 --features 64,256 --bases neurons,sae,random,pca --basis-features 50 --repeats 2 --results
	date -u +%T; time -p $(BENCH)/scale.py --d-in 256 --steps 4 --configs 1x1,1x2,2x1 --repeats 2 --results
	@echo "tables in bench/results/ (see bench/results/README.md)"

clean:
	rm -rf $(VENV) $(SAELENS_VENV) runs
