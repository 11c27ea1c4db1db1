# uqseg: `make demo` sets up .venv and runs the demo; `make test` sets up .venv and runs the tests.
PY := .venv/bin/python
STAMP := .venv/.uqseg-setup-done

.PHONY: setup demo test lint gpu-check clean-data

$(STAMP): tools/setup_env.sh pyproject.toml
	bash tools/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

# ruff (pinned in the test extra): pyflakes, pycodestyle, import order; configuration in pyproject.toml
lint: $(STAMP)
	$(PY) -m ruff check uqseg tests tools benchmarks configs

# on a machine with a CUDA device: gpu tests, the CUDA calibration benchmark, a short --amp training
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py

clean-data:
	rm -rf data/demo work_dirs/demo
