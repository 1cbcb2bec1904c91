# Two commands on a fresh Linux machine with only Python 3:
#   make demo   - the main job on the embedded emulator
#   make test   - the whole suite, inside a private loopback-only network namespace
# and, as root, make fleet-demo: a fleet of namespace VMs diagnosed over real SSH.
# Each creates .venv and installs what it needs (Debian packages too, when run as root).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lab venv sysdeps bench bytecode clean probe fleet-demo

venv: $(STAMP)

# The core needs only the standard library; demo, lab and test need every extra (pyproject.toml),
# fleet (ansible-core) included: the fleet tests drive Ansible over SSH.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[notebooks,lab,test,fleet]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Debian packages the suite uses: iptables (real firewall faults in the namespace), squid and
# tinyproxy (real proxies on loopback), curl (what curl really does with proxy variables),
# openssh-server (an sshd per namespace VM for the fleet tests; its host keys are the rig's own),
# dash, busybox and shellcheck (imds-collect.sh runs under dash, bash --posix and busybox sh, and
# must stay shellcheck -s sh clean).
# Installed only as root and only when missing; without them those tests skip and say why.
# policy-rc.d keeps the packages' own services from starting: tests start their own.
SYSDEPS := iptables:iptables ip:iproute2 unshare:util-linux squid:squid tinyproxy:tinyproxy curl:curl \
           sshd:openssh-server dash:dash busybox:busybox shellcheck:shellcheck
sysdeps:
	@missing=""; \
	for pair in $(SYSDEPS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    made_policy=""; \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi; \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null)); \
	    status=$$?; [ -n "$$made_policy" ] && rm -f /usr/sbin/policy-rc.d; exit $$status; \
	  else \
	    echo "note: missing$$missing (not root: the tests that need them skip)"; \
	  fi; \
	fi

# An editable install writes no bytecode for our package, and these machines set
# PYTHONDONTWRITEBYTECODE: without this every CLI start and every kernel compiled ~9,000
# lines again (about 60 ms). compileall redoes only files that changed.
bytecode: $(STAMP)
	@$(PY) -m compileall -q imds_helpers

test: $(STAMP) sysdeps bytecode
	tests/isolated.sh $(PY) -m pytest

demo: $(STAMP) bytecode
	$(PY) -m imds_helpers demo

lab: $(STAMP) bytecode
	$(PY) -m imds_helpers lab

# A fleet of namespace VMs (tests/fleet/rig.py: one fault each, sshd in each, addresses that exist
# only inside the isolated namespace) diagnosed by `imds-runbook fleet` over real SSH; the reports
# land in reports/fleet-demo/. Root only: network namespaces, mounts and an sshd per VM.
fleet-demo: $(STAMP) sysdeps bytecode
	@if [ "$$(id -u)" != 0 ]; then echo "make fleet-demo needs root (network namespaces, an sshd per VM)"; exit 2; fi
	tests/isolated.sh $(PY) tools/fleet_rig.py demo --out reports/fleet-demo

# The standard-library core as one file for a machine with only Python >= 3.10:
#   python3 dist/imds-probe.pyz check    (no .venv needed to build it)
probe:
	$(PYTHON) tools/build_probe.py dist/imds-probe.pyz

bench: $(STAMP) sysdeps bytecode
	@for script in benchmarks/bench_*.py; do echo "== $$script"; tests/isolated.sh $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) reports build dist *.egg-info
