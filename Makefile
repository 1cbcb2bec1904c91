# Two commands on a fresh Linux machine with only Python 3:
#   make demo   - the main job on the embedded emulator
#   make test   - the whole suite, inside a private loopback-only network namespace
# Each creates .venv and installs what it needs (Debian packages too, when run as root).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEB_PACKAGES := iptables iproute2 util-linux

.PHONY: demo test lab venv sysdeps bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# iptables gives the suite real firewall faults inside its namespace. Installed only as
# root and only when missing; without it those tests skip and say why.
sysdeps:
	@missing=""; \
	command -v iptables >/dev/null 2>&1 || missing="$$missing iptables"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v unshare >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get install -y -q $$missing >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null)); \
	  else \
	    echo "note: missing$$missing (not root: namespace/firewall tests may skip)"; \
	  fi; \
	fi

test: $(STAMP) sysdeps
	tests/isolated.sh $(PY) -m pytest

demo: $(STAMP)
	$(PY) -m imds_helpers demo

lab: $(STAMP)
	$(PY) -m imds_helpers lab

bench: $(STAMP) sysdeps
	tests/isolated.sh $(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) reports build *.egg-info
