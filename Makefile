# The README's two commands: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-fast lint bench

$(VENV)/.installed: pyproject.toml
	scripts/bootstrap-venv $(VENV)
	touch $@

run: $(VENV)/.installed
	scripts/run $(VENV)

test:
	scripts/test $(VENV)

# Everything that needs no browser, Celery worker, sandbox or pgBackRest (under a minute).
test-fast:
	scripts/test $(VENV) -m "not slow" -q

lint:
	scripts/lint $(VENV)

bench: $(VENV)/.installed
	$(PY) bench/backup.py
