# The two commands of the course (see README.md):
#   make run    set up .venv/ in this checkout, then run the main job at the default budget
#   make test   set up .venv/, then run the whole test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUDGET ?= default

.PHONY: run test setup clean

run: setup
	$(PY) -m course_lib.main --budget $(BUDGET)

test: setup
	$(PY) -m pytest -n 2 --durations=15 -q

setup: $(VENV)/.installed

# Re-install only when the pins change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

clean:
	rm -rf build .pytest_cache
