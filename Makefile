# firedrill — see README.md. `make drill` and `make test` do all set-up themselves.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
FIREDRILL := target/debug/firedrill

.PHONY: help setup setup-local build test drill record review clean down fuzz bench

help:
	@echo "make drill   set up, bring up the local backend, run every suite, write reports/latest and docs/failure-domains.md"
	@echo "make test    set up and run every test: unit, every scenario's verdict from its recording, CLI, each fault kind live, one live drill per suite, kind"
	@echo "make setup   Debian packages, pinned upstream binaries, a Docker engine, the kind node image (cached; seconds when warm)"
	@echo "make record  keep every scenario of the last drill (reports/latest) as a recording in recordings/, which make test judges again"
	@echo "make review  review snapshot changes (cargo insta review)"
	@echo "make bench   every benchmark figure against its target (bring-up local and kind, MTTR accuracy, overhead, Chaos Toolkit, whole drill)"
	@echo "make fuzz    fuzz the suite loader for 10 minutes (nightly toolchain, cargo-fuzz)"
	@echo "make down    tear down every run of the state directory (firedrill down --all), then stop firedrill's own Docker engine"
	@echo "make clean   make down, then cargo clean"

# $(call beside,PART,CARGO-BUILDS): ci/setup.sh's PART (empty: all of it) and Cargo's builds
# side by side: a cold set-up spends minutes downloading and linking with a core idle. When
# the Cargo build fails, the set-up is still waited for, so that nothing is left running;
# the status is the Cargo build's, else the set-up's.
beside = ci/setup.sh $(1) >/dev/null & setup=$$!; \
  status=0; { $(2); } || status=$$?; \
  wait $$setup; exit $$status

# Debian packages and the pinned upstream builds; then a Docker engine (ci/docker.sh: the
# one already running, or firedrill's own, on its own socket and paths); then the
# kind backend's node image, built offline (ci/kind-image.sh; cached by a hash of its inputs).
setup:
	$(call beside,,CARGO=$(CARGO) ci/cargo-cache.sh restore && $(CARGO) build -q -p firedrill --bin firedrill)
	ci/docker.sh $(FIREDRILL)
	ci/kind-image.sh >/dev/null

# make test's foreground set-up: the part every test but the kind backend's needs, beside
# the Cargo build of the whole workspace, its test binaries included. A fresh checkout takes
# the compiled dependencies from the per-user cache (ci/cargo-cache.sh, keyed by Cargo.lock,
# the manifests and the toolchain), and saves them there when the key is new.
setup-local:
	$(call beside,local,CARGO=$(CARGO) ci/cargo-cache.sh restore && $(CARGO) build -q --workspace --bins && $(CARGO) test -q --workspace --no-run && CARGO=$(CARGO) ci/cargo-cache.sh save)
	ci/docker.sh $(FIREDRILL)

build: setup
	$(CARGO) build --workspace --bins

# Every test binary, layer by layer, the kind backend's set-up built in the background
# meanwhile (ci/test.sh; docs/testing.md says which layer checks what).
test: setup-local
	CARGO=$(CARGO) ci/test.sh

# The living document is written from the run's report when the run reached verdicts (0 or
# 1: a mismatch belongs in it too); the run's exit status is kept, or 2 when only the
# document could not be written.
drill: build
	status=0; $(FIREDRILL) run --backend local --report reports/latest || status=$$?; \
	  if [[ $$status -le 1 ]]; then $(FIREDRILL) docs --report reports/latest || { [[ $$status != 0 ]] || status=2; }; fi; \
	  exit $$status

# Every scenario of the last drill kept as a recording (recordings/BACKEND/), the evidence
# make test judges every scenario's verdict from; REPORT=DIR for another run's report (a
# nightly's artifact). Only scenarios that matched their document are recorded.
REPORT ?= reports/latest
record:
	$(CARGO) build -q -p firedrill --bin firedrill
	$(FIREDRILL) record $(REPORT)

# Every figure of the README's benchmark table, against its target; the debug build is the
# one measured (it is what `make drill` runs). FIREDRILL_BENCH_ROUNDS=1 for a shorter drill.
BENCH := $(CARGO) bench --profile dev -p firedrill --bench
bench: build
	$(BENCH) up
	FIREDRILL_BENCH_TOPOLOGY=multi FIREDRILL_BENCH_RUNS=3 $(BENCH) up
	$(BENCH) kind_up
	$(BENCH) mttr
	$(BENCH) overhead
	ci/bench-ctk.sh
	$(BENCH) drill
	$(BENCH) summary

# The suite loader under libFuzzer for FUZZ_SECONDS (default 600); needs a nightly toolchain.
FUZZ_SECONDS ?= 600
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p fuzz/corpus/suite_loader
	cd fuzz && $(CARGO) +nightly fuzz run suite_loader corpus/suite_loader ../harness/tests/data/bad-suites ../suites -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536

review:
	@command -v cargo-insta >/dev/null || $(CARGO) install cargo-insta --locked
	$(CARGO) insta review --workspace

down:
	@if [[ -x $(FIREDRILL) ]]; then $(FIREDRILL) down --all && ci/docker.sh --stop $(FIREDRILL); fi

clean: down
	$(CARGO) clean
