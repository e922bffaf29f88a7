# The two commands: `make run` and `make test`. Each sets up what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/workflow-example/workflow-example.yaml
# System programs the test suite uses, as "command:debian-package" (a full path for a
# command outside a user's PATH, such as /usr/sbin/sshd).
SYSTEM_NEEDS := dot:graphviz systemd-analyze:systemd chromium:chromium /usr/sbin/sshd:openssh-server \
	/usr/sbin/munged:munge /usr/sbin/slurmctld:slurmctld /usr/sbin/slurmd:slurmd sbatch:slurm-client

.PHONY: run test bench lint system venv clean

# ccd in the foreground with the example workflow uploaded; prints the URL and a login link.
run: venv
	$(BIN)/ccd --upload $(EXAMPLE) --print-login

test: venv system lint
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python bench/run.py

lint: venv
	$(BIN)/ruff check ccd ccctl tests bench examples
	$(BIN)/mypy

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "ccd needs Python 3.11 or newer; set PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

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
