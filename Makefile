# The README's two commands: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test bench

$(VENV)/.installed: pyproject.toml
	scripts/bootstrap-venv $(VENV)
	touch $@

run: $(VENV)/.installed
	scripts/run $(VENV)

test:
	scripts/test $(VENV)

bench: $(VENV)/.installed
	$(PY) bench/backup.py
