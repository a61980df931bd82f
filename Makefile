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
# FHE work is single-threaded, so on 2 cores two pytest processes run side by side: the protocol
# tier's whole deployments in one, and beside it mypy, the unit tier and the two lightest
# protocol modules (PROTOCOL_BESIDE), whose output is printed when the protocol tier is done.
# Memory allows that there (measured: the unit tier peaks at 8.8 GB, the protocol tier at 6.4 GB
# in its first minutes and 16.9 GB later). The service tests (a 4-of-7 committee is eight
# processes of 2–4 GB each) then run alone, in their own process: in-process deployments leave a
# test process gigabytes larger. Every part runs even when another fails.
PROTOCOL_BESIDE := tests/protocol/test_anonymous_stags.py tests/protocol/test_bench.py
BESIDE_LOG := $(VENV)/test-beside.log

test: $(STAMP) proto-check
	@status=0; \
	( part=0; \
	  echo "== mypy --strict (tools/typecheck.py)"; $(PY) tools/typecheck.py || part=1; \
	  echo "== tests/unit"; $(PY) -m pytest tests/unit --durations=15 $(PYTEST_ARGS) || part=1; \
	  echo "== $(PROTOCOL_BESIDE)"; $(PY) -m pytest $(PROTOCOL_BESIDE) --durations=15 $(PYTEST_ARGS) || part=1; \
	  exit $$part ) > $(BESIDE_LOG) 2>&1 & beside=$$!; \
	echo "== tests/protocol, but $(PROTOCOL_BESIDE) (mypy, tests/unit and those run beside it: their output follows)"; \
	$(PY) -m pytest tests/protocol $(addprefix --ignore=,$(PROTOCOL_BESIDE)) --durations=15 $(PYTEST_ARGS) || status=1; \
	wait $$beside || status=1; \
	cat $(BESIDE_LOG); \
	echo "== tests/services"; \
	$(PY) -m pytest tests/services --durations=15 $(PYTEST_ARGS) || status=1; \
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
