# The two commands of the course (see README.md):
#   make run    set up .venv/ in this checkout, then run the main job at the default budget
#   make test   set up .venv/, then run the whole test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUDGET ?= default

.PHONY: run test setup chromium postgres clean exercises

run: setup chromium
	$(PY) -m coursetools.main --budget $(BUDGET)

# --dist loadfile: a test module stays on one worker, so module fixtures (the lectures executed
# once at the ci budget, the site built from them) run once
test: setup chromium postgres
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 -q

JUPYTER_MATH := $(VENV)/share/jupyter/nbconvert/templates/formgrade/mathjax.html.j2

setup: $(VENV)/.installed $(JUPYTER_MATH)

# Re-install only when the pins change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# formgrader's math offline for a plain `jupyter lab` from the venv: MathJax served by the server itself
# (into the venv's etc/jupyter and share/jupyter, which Jupyter reads by default; autograder/README.md)
$(JUPYTER_MATH): $(VENV)/.installed autograder/jupyter/nbconvert/templates/formgrade/mathjax.html.j2 scripts/install_jupyter_config.py
	$(PY) scripts/install_jupyter_config.py

# headless Chromium for the browser tests and the site's screenshots (Debian's package, via
# apt-get when run as root; elsewhere a warning, and the browser tests skip saying why)
chromium:
	@bash scripts/ensure_chromium.sh

# PostgreSQL's server programs for the distributed grading tests (Debian's package, via apt-get when run as
# root; elsewhere a warning, and those tests skip saying why)
postgres:
	@bash scripts/ensure_postgres.sh

# everything the exercise specs decide (course_lib/exercises): notebooks, releases, sample classes, README
exercises: setup
	$(PY) -m course_lib.exercises sync
	$(PY) scripts/normalize_notebooks.py
	for a in 01_gradient_flow 02_lstm_gru_cells 03_deep_bidirectional 04_training_with_clipping; do \
		$(PY) -m autograder release $$a || exit 1; done
	$(PY) -m autograder.samples.make_samples
	$(PY) -m autograder.samples.make_samples_rnn
	$(PY) -m autograder.samples.make_samples_train
	$(PY) -m course_lib.exercises readme

clean:
	rm -rf build .pytest_cache
