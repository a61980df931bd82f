# stagpack — every target sets up what it needs: a Python 3.10 virtual environment in .venv
# with the project installed (editable) and the exact versions from constraints.txt.

VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.stagpack-installed
PYTEST_ARGS ?=

.PHONY: all venv demo test test-unit test-protocol test-services bench proto proto-check compose-check typecheck clean

all: test

$(STAMP): pyproject.toml constraints.txt tools/find-python310
	@set -e; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	  python310=$$(tools/find-python310); \
	  echo "creating $(VENV) with $$python310"; \
	  rm -rf $(VENV); \
	  "$$python310" -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/stagpack demo

# Everything: stubs current, mypy --strict, then every tier (slow tests included). CI runs this.
# Each tier runs in its own pytest process, and all three run even when one fails: the
# in-process deployments leave the test process gigabytes larger, and the service tests (a
# 4-of-7 committee is eight processes of 2–4 GB each) need that memory back.
test: $(STAMP) proto-check typecheck
	@status=0; \
	for tier in unit protocol services; do \
	  echo "== tests/$$tier"; \
	  $(PY) -m pytest tests/$$tier --durations=15 $(PYTEST_ARGS) || status=1; \
	done; \
	exit $$status

# The inner loop between edits: pure code only (tests/unit), under 3 minutes on 2 cores.
test-unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Whole deployments in one process (tests/protocol).
test-protocol: $(STAMP)
	$(PY) -m pytest tests/protocol $(PYTEST_ARGS)

# Real service processes on loopback ports (tests/services).
test-services: $(STAMP)
	$(PY) -m pytest tests/services $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/stagpack bench

# Regenerate the protobuf/gRPC stubs in stagpack/v1 from proto/stagpack/v1/*.proto.
proto: $(STAMP)
	$(PY) tools/generate_proto.py

# Fail when the committed stubs differ from what the .proto files generate.
proto-check: $(STAMP)
	$(PY) tools/generate_proto.py --check

# Validate deploy/compose.yaml offline (Debian's docker-compose; no Docker engine needed).
compose-check:
	docker-compose -f deploy/compose.yaml config -q

# mypy --strict on every package, services included; see tools/typecheck.py.
typecheck: $(STAMP)
	$(PY) tools/typecheck.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
