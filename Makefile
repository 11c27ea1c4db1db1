# uqseg: `make demo` sets up .venv and runs the demo; `make test` sets up .venv and runs the tests.
PY := .venv/bin/python
STAMP := .venv/.uqseg-setup-done

.PHONY: setup install-check compat-check demo compare-heads compare-calibration cls-data compare-classifiers compare-baselines test lint docs gpu-check clean-data

$(STAMP): tools/setup_env.sh pyproject.toml requirements/constraints.txt
	bash tools/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

# the SOD demo (uqseg demo): BCE and ASLP trained at once on the synthetic SOD data, tested, the table and
# the pictures (work_dirs/demo/pictures); about 10 minutes on 2 cores, one line per stage, the logs in files
demo: $(STAMP)
	$(PY) -m uqseg demo

# the heads comparison over 3 seeds (README "Uncertainty heads"): 15 trainings of ~2 minutes each (one thread)
compare-heads: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) tools/compare_heads.py --seeds 0 1 2

# the calibration comparison over 3 seeds (README "Calibration: temperature scaling and LDL"): the shapes
# demo (9 trainings of ~2 minutes on one thread) and the SOD demo with ASLP (12 of ~6 minutes)
compare-calibration: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) tools/compare_calibration.py --demo shapes --seeds 0 1 2
	OMP_NUM_THREADS=1 $(PY) tools/compare_calibration.py --demo sod --seeds 0 1 2

# the classification data: Fashion-MNIST from the Debian package dataset-fashion-mnist (or the embedded fallback)
cls-data: $(STAMP)
	$(PY) -m uqseg make-demo-data --only cls

# the classification comparison (README "Image classification and selective prediction"): every method on the
# Fashion-MNIST demo (MNIST as OOD), 3 seeds for the headline rows, ~1.5 minutes a training on one thread; the
# outputs of every model scored at once by tools/eval_selective.py, one ranked table
compare-classifiers: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) tools/compare_classifiers.py --seeds 0 1 2 --extra-seeds 0

# the baselines (docs/ensembles.md#evidence): one model, 5-member deep ensembles of disjoint seeds, MC dropout
# (T = 10), TTA and the seed papers' methods on the three demos, 3 seeds each; 15 + 6 trainings a demo (the
# classifier's 3 more for its dropout), ~2 min each on one thread (SOD: ~6), then the tests
compare-baselines: $(STAMP)
	$(PY) -m uqseg make-demo-data
	$(PY) -m uqseg make-demo-data --only cls
	OMP_NUM_THREADS=1 $(PY) -m uqseg compare-baselines --demo shapes --seeds 0 1 2
	OMP_NUM_THREADS=1 $(PY) -m uqseg compare-baselines --demo cls --seeds 0 1 2
	OMP_NUM_THREADS=1 $(PY) -m uqseg compare-baselines --demo sod --seeds 0 1 2

test: $(STAMP)
	$(PY) -m pytest -q

# ruff (pinned in the test extra): pyflakes, pycodestyle, import order; configuration in pyproject.toml
lint: $(STAMP)
	$(PY) -m ruff check uqseg tests tools benchmarks

# the documentation site from docs/ (MkDocs + Material + mkdocstrings) into site/; --strict: a broken link, anchor
# or API reference fails the build
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# a user's install, from outside the repository: sdist and wheel, the wheel installed (not editable) into a venv
# that sees this stack, uqseg --help, configs copy, a short training, custom_imports, import without mmpretrain
install-check: $(STAMP)
	bash tools/install_check.sh

# once per release (not in CI: the two mmcv builds take 10-25 minutes each on 2 cores): the oldest declared stack
# (Python 3.10, torch 2.1.2, requirements/oldest.txt) and Python 3.12, each with the install check and the tests
compat-check:
	bash tools/compat_check.sh

# on a machine with a CUDA device: gpu tests, the CUDA calibration benchmark, a short --amp training
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py

clean-data:
	rm -rf data/demo data/demo_shapes data/fashion_mnist data/fashion_mnist_fallback data/cls_data.json work_dirs/demo \
		work_dirs/heads_demo work_dirs/calibration_demo work_dirs/cls_demo work_dirs/baselines
