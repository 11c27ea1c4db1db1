# uqseg: `make demo` sets up .venv and runs the demo; `make test` sets up .venv and runs the tests.
PY := .venv/bin/python
STAMP := .venv/.uqseg-setup-done

.PHONY: setup demo test clean-data

$(STAMP): tools/setup_env.sh pyproject.toml
	bash tools/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

clean-data:
	rm -rf data/demo work_dirs/demo
