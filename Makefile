# The two commands: `make run` and `make test`. Each sets up what it needs by itself.
# `make bench ARGS="--only engine"`, `make bench ARGS="--ab main HEAD"`: bench/run.py --help.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/workflow-example/workflow-example.yaml
# System programs the test suite uses, as "command:debian-package" (a full path for a
# command outside a user's PATH, such as /usr/sbin/sshd).
SYSTEM_NEEDS := dot:graphviz systemd-analyze:systemd chromium:chromium /usr/sbin/sshd:openssh-server \
	/usr/sbin/munged:munge /usr/sbin/slurmctld:slurmctld /usr/sbin/slurmd:slurmd sbatch:slurm-client

.PHONY: run test bench lint system graphviz venv dev clean

# ccd in the foreground with the example workflow uploaded; prints the URL and a login link.
run: venv graphviz
	$(BIN)/ccd --upload $(EXAMPLE) --print-login

test: dev system lint
	$(BIN)/python -m pytest

bench: dev
	$(BIN)/python bench/run.py $(ARGS)

lint: dev
	$(BIN)/ruff check ccd ccctl tests bench examples
	$(BIN)/mypy

# Two stamps: `make run` installs what running needs; the test, lint and bench tools come
# on top, the first time one of those targets runs (in the same .venv).
venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "ccd needs Python 3.11 or newer; set PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# `ccctl graph -f svg` needs Graphviz's dot; running ccd does not (the page draws graphs).
graphviz:
	@command -v dot >/dev/null 2>&1 || echo "Graphviz is not installed: ccctl graph -f svg \
	(or png) needs its dot program (sudo apt-get install -y graphviz); -f dot and the page \
	draw graphs without it."

# Installs what the tests need when running as root (as CI does); otherwise says how.
system:
	@missing=""; for need in $(SYSTEM_NEEDS); do \
	  command -v $${need%%:*} >/dev/null 2>&1 || missing="$$missing $${need#*:}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $$missing; \
	else \
	  echo "The tests need:$$missing. Install with: sudo apt-get install -y$$missing"; \
	  echo "(without them those tests skip; under CI=true they fail)"; \
	fi

clean:
	rm -rf $(VENV) .bench test-output .pytest_cache .mypy_cache .ruff_cache
