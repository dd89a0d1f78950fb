# Development and CI entry points. See README.md.
#   make deps         the stack's apt packages + .venv (test tools only) + editable installs of the components
#   make test         ruff, then every test (components' */tests and tests/); apt groups stack+debs+image+test
#   make apt-deps     every apt group (make print-apt-packages lists them)
#   make lint         ruff check + ruff format --check
#   make stack        local PostgreSQL + RabbitMQ under run/ (STACK_ARGS="--pg-port 6543 ...")
#   make stack-down / stack-status (each service, its ports, whether it answers; exit 1 when one does not)
#   make debs         Debian packages of every component + apt index in build/debs (docs/packaging.md)
#   make asterisk-deb our Asterisk package for this machine into build/debs (cached: instant when unchanged)
#   make debs-test    only the packaging tests (lintian, units, install/upgrade in a clean bookworm)
#   make image        both appliance images from scratch (VM amd64 qcow2 + Vagrant box, XIOH i386 raw)
#   make image-vm / image-xioh    one of them
#   make acceptance   the VM image built, booted in qemu and checked by tests/acceptance
#   make devbox       a plain bookworm Vagrant box (libvirt) that `PBX_VAGRANT_BOX=devbox vagrant up` provisions offline
#   make vagrant-test `vagrant up` end to end on a private libvirt (VAGRANT_BOXES="image devbox"; default image)
#   make devbox-test  the same with the dev box (site.yml provisioned twice: too long for CI under TCG)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
COMPONENTS := confdb agid ctid confgend tools
COMPONENT_PROJECTS := $(wildcard $(addsuffix /pyproject.toml,$(COMPONENTS)))
DEPS_STAMP := $(VENV)/.deps-stamp
PYTEST_ARGS ?=
STACK_ARGS ?=

# Apt packages, in groups: each target installs the groups it uses (missing packages only), so that
# `make stack` does not bring the CI toolchain. `make apt-deps` installs every group.
#
# stack (APT_PACKAGES; `make deps`, `make stack` and every other target): what the stack runs and builds.
# Runtime libraries come from bookworm (the versions the appliance ships); the servers are for the test
# harness and the local stack; setpriv (util-linux) runs PostgreSQL as "postgres" when we are root.
APT_PACKAGES := \
	postgresql-15 postgresql-client-15 rabbitmq-server util-linux \
	python3 python3-venv python3-pip python3-setuptools python3-wheel \
	python3-psycopg python3-psycopg-pool python3-twisted python3-sqlalchemy python3-alembic \
	python3-pika python3-jinja2 python3-yaml python3-psycopg2 python3-openssl python3-jsonschema \
	asterisk-core-sounds-en asterisk-core-sounds-en-gsm asterisk-moh-opsound-gsm
# Our Asterisk (packages/build-asterisk, run by `make asterisk-deb` before the stack starts it): the
# source's verification (dscverify, Debian's keyring), dpkg-buildpackage and the apt index, and the
# Build-Depends of packages/asterisk/debian/control (a test checks that they are all here).
APT_PACKAGES += \
	build-essential debhelper dpkg-dev apt-utils \
	devscripts debian-keyring bzip2 pkg-config libcurl4-openssl-dev libedit-dev libjansson-dev \
	libpq-dev libsqlite3-dev libsrtp2-dev libssl-dev libsystemd-dev libxml2-dev libxslt1-dev uuid-dev zlib1g-dev
# debs (`make debs`): the Python packages' build (packages/build-debs: pybuild, a clean tree from git).
APT_DEBS_PACKAGES := dh-python pybuild-plugin-pyproject python3-all git
# image (`make image`, `make acceptance`; image/build): bootstrap, the roles applied through Ansible's
# chroot connection, filesystem and disk without loop mounts, GRUB for BIOS, qemu to boot the VM image,
# arch-test for mmdebstrap's i386 (XIOH) image.
APT_IMAGE_PACKAGES := \
	mmdebstrap ansible systemd mount arch-test e2fsprogs fdisk grub-pc-bin qemu-system-x86 qemu-utils \
	openssh-client
# test (`make test`, with the two groups above): packaging tests (lintian, mmdebstrap's clean bookworm,
# systemd-analyze), the Ansible roles and the dev box (tests/ansible: systemd-nspawn boots the test
# host; vagrant-libvirt lets `vagrant validate` check the libvirt settings), lockgraph's rendering
# (graphviz), and SIPp for the call benchmarks (bench/run calls.setup).
APT_TEST_PACKAGES := \
	lintian mmdebstrap systemd git mount ansible ansible-lint systemd-container vagrant vagrant-libvirt \
	graphviz sip-tester
# `vagrant up` tested end to end (tests/vagrant, `make vagrant-test`): the test runs its own libvirtd and
# virtlogd (libvirt-daemon-system for the users qemu and dnsmasq run as; its services are not started),
# its NAT network (dnsmasq, iptables in the test's network namespace, iproute2), virsh to check that
# nothing is left, rsync for the synced folder.
APT_TEST_PACKAGES += \
	libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients dnsmasq-base iptables iproute2 rsync
APT_GROUPS := stack debs image test
apt-packages-stack = $(APT_PACKAGES)
apt-packages-debs = $(APT_DEBS_PACKAGES)
apt-packages-image = $(APT_IMAGE_PACKAGES)
apt-packages-test = $(APT_TEST_PACKAGES)

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# stack-down/status must work without a venv.
STACK_PYTHON = $(firstword $(wildcard $(PY)) $(SYSTEM_PYTHON))

.PHONY: deps apt-deps $(addprefix apt-,$(APT_GROUPS)) print-apt-packages
.PHONY: test lint stack stack-down stack-status clean
.PHONY: debs debs-test asterisk-deb
.PHONY: image image-vm image-xioh acceptance devbox vagrant-test devbox-test
IMAGE_DIR ?= build/image
IMAGE_ARGS ?=
# After the other tests, `make test` builds the VM image, boots it and runs the acceptance suite against it
# (ACCEPTANCE=0 leaves that out; `make acceptance` runs it alone). ACCEPTANCE_XIOH=1 also builds the XIOH
# image (about 12 min, over CI's budget with the rest; `make image-xioh` builds it alone).
ACCEPTANCE ?= 1
ACCEPTANCE_XIOH ?= 0
ACCEPTANCE_ARGS ?=
DEBS_DIR ?= build/debs
# Architectures of the asterisk package in DEBS_DIR; the XIOH image (i386) adds its own.
ASTERISK_ARCHS ?= $(shell dpkg --print-architecture)

deps: $(DEPS_STAMP)

apt-deps: $(addprefix apt-,$(APT_GROUPS))

# apt-stack, apt-debs, apt-image, apt-test: one group each. Installs only what is missing (checking
# takes under a second). A policy-rc.d that denies starts keeps the packages' own PostgreSQL/RabbitMQ/epmd
# services from starting (we run private instances); an existing policy is kept.
$(addprefix apt-,$(APT_GROUPS)): apt-%:
	@group=$*; missing=""; \
	for pkg in $(apt-packages-$*); do \
	  dpkg-query -W -f='$${Status}\n' "$$pkg" 2>/dev/null | grep -qx 'install ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then echo "apt ($$group): all packages present"; exit 0; fi; \
	echo "apt ($$group): installing$$missing"; \
	policy=/usr/sbin/policy-rc.d; \
	if [ ! -e "$$policy" ]; then \
	  printf '#!/bin/sh\n# temporary, from the PBX Makefile: no service starts during install\nexit 101\n' \
	    | $(SUDO) tee "$$policy" >/dev/null; \
	  $(SUDO) chmod 755 "$$policy"; \
	  trap '$(SUDO) rm -f "$$policy"' EXIT; \
	fi; \
	$(SUDO) apt-get update -qq; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends $$missing </dev/null

# What each group holds, one line each ("stack: postgresql-15 ...").
print-apt-packages:
	@$(foreach group,$(APT_GROUPS),echo "$(group): $(apt-packages-$(group))";)

# The one stamp: redone when the Makefile (its apt lists among the rest), requirements-dev.txt or a
# component's pyproject.toml changes.
$(DEPS_STAMP): Makefile requirements-dev.txt $(COMPONENT_PROJECTS) | apt-stack
	@if [ -e $(VENV) ] && ! { grep -qx 'home = /usr/bin' $(VENV)/pyvenv.cfg \
	  && grep -qx 'include-system-site-packages = true' $(VENV)/pyvenv.cfg; } 2>/dev/null; then \
	  echo "venv: $(VENV) is not a --system-site-packages venv of $(SYSTEM_PYTHON); recreating"; rm -rf $(VENV); \
	fi
	@[ -x $(PY) ] || { echo "venv: creating $(VENV)"; $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV); }
	@echo "venv: installing requirements-dev.txt"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@for project in $(COMPONENT_PROJECTS); do \
	  dir=$$(dirname "$$project"); echo "venv: editable install of $$dir"; \
	  $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
	    --config-settings editable_mode=compat -e "./$$dir"; \
	done
	@touch $@

test: deps asterisk-deb apt-debs apt-image apt-test
	$(VENV)/bin/ruff check .
	@rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5), counted as success"; rc=0; fi; \
	exit $$rc
	@if [ "$(ACCEPTANCE)" = 1 ]; then $(MAKE) --no-print-directory acceptance; fi
	@if [ "$(ACCEPTANCE)" = 1 ] && [ "$(ACCEPTANCE_XIOH)" = 1 ]; then \
	  start=$$SECONDS; $(MAKE) --no-print-directory image-xioh; \
	  echo "timing: XIOH image build $$((SECONDS - start)) s"; fi

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every Debian package, built from the repository's files (see docs/packaging.md), with an apt index.
debs: apt-stack apt-debs
	packages/build-debs -o $(DEBS_DIR) -A "$(ASTERISK_ARCHS)"

# Our Asterisk package alone, for this machine, into DEBS_DIR (its index rewritten), where the test harness
# and the local stack take it (cold: about 4 min on 2 CPUs; cached: under a second).
asterisk-deb: apt-stack
	packages/build-asterisk -o $(DEBS_DIR)
	packages/index-debs $(DEBS_DIR)

# The packaging tests alone (also part of `make test`): lintian, units, install/upgrade in a clean bookworm.
debs-test: deps apt-debs apt-test
	$(PY) -m pytest tests/packaging $(PYTEST_ARGS)

# Appliance images from scratch (image/build --help); they install the packages of `make debs`.
image: deps debs apt-image
	image/build -o $(IMAGE_DIR) $(IMAGE_ARGS)

image-vm: deps debs apt-image
	image/build -o $(IMAGE_DIR) $(IMAGE_ARGS) vm

image-xioh: deps debs apt-image
	image/build -o $(IMAGE_DIR) $(IMAGE_ARGS) xioh

# The XIOH image needs the i386 Asterisk in DEBS_DIR (built in an i386 chroot, cached like amd64's).
image image-xioh: ASTERISK_ARCHS = $(shell dpkg --print-architecture) i386

# Build the VM image, boot it in qemu (KVM when usable) and run tests/acceptance against its root
# filesystem (chroot) and the running VM (SSH); prints the time of each step.
acceptance: deps debs apt-image
	@start=$$SECONDS; image/build -o $(IMAGE_DIR) $(IMAGE_ARGS) vm; \
	echo "timing: VM image build $$((SECONDS - start)) s"
	@start=$$SECONDS; rc=0; \
	$(PY) -m pytest tests/acceptance -p no:cacheprovider -o timeout=900 \
	  --rootfs $(IMAGE_DIR)/vm/rootfs --vm-image $(IMAGE_DIR)/pbx-vm-amd64.qcow2 \
	  --vm-key $(IMAGE_DIR)/ssh/id_ed25519 $(ACCEPTANCE_ARGS) || rc=$$?; \
	echo "timing: VM boot + acceptance suite $$((SECONDS - start)) s"; \
	exit $$rc

# The dev box: Debian bookworm with the Debian packages site.yml installs in a local apt repository, for
# the Vagrantfile to provision offline (PBX_VAGRANT_BOX=devbox vagrant up).
devbox: deps debs apt-image
	image/build -o $(IMAGE_DIR) $(IMAGE_ARGS) devbox

# `vagrant up` end to end (tests/vagrant) with each box of VAGRANT_BOXES (image, devbox), each built first
# when missing, on the test's own libvirtd; prints the time of each phase. Not in `make test` yet: the
# image's box cannot be provisioned offline (its apt sources name Debian's mirror; see README), and the
# dev box's provisioning under TCG does not fit CI's budget (make devbox-test).
VAGRANT_BOXES ?= image
VAGRANT_TEST_ARGS ?=
vagrant-test: deps debs apt-image apt-test
	@for box in $(VAGRANT_BOXES); do \
	  case $$box in image) name=vm ;; devbox) name=devbox ;; \
	    *) echo "VAGRANT_BOXES: image or devbox, not $$box" >&2; exit 2 ;; esac; \
	  [ -e $(IMAGE_DIR)/pbx-$$name-amd64.box ] && continue; \
	  start=$$SECONDS; image/build -o $(IMAGE_DIR) $(IMAGE_ARGS) $$name; \
	  echo "timing: $$name box build $$((SECONDS - start)) s"; \
	done
	@start=$$SECONDS; rc=0; \
	$(PY) -m pytest tests/vagrant -p no:cacheprovider -s $(addprefix --vagrant-box=,$(VAGRANT_BOXES)) \
	  $(VAGRANT_TEST_ARGS) || rc=$$?; \
	echo "timing: vagrant test ($(VAGRANT_BOXES)) $$((SECONDS - start)) s"; \
	exit $$rc

devbox-test:
	@$(MAKE) --no-print-directory vagrant-test VAGRANT_BOXES=devbox

stack: deps asterisk-deb
	PYTHONPATH=tests $(PY) -m harness.stack up $(STACK_ARGS)

stack-down:
	PYTHONPATH=tests $(STACK_PYTHON) -m harness.stack down $(STACK_ARGS)

stack-status:
	PYTHONPATH=tests $(STACK_PYTHON) -m harness.stack status $(STACK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './run/*' -exec rm -rf {} +
