# firedrill — see README.md. `make drill` and `make test` do all set-up themselves.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
FIREDRILL := target/debug/firedrill

.PHONY: help setup build test drill review clean down fuzz bench

help:
	@echo "make drill   set up, bring up the local backend, run every suite, write reports/latest and docs/failure-domains.md"
	@echo "make test    set up and run every test (unit, CLI, local-backend integration, drills)"
	@echo "make setup   Debian packages, pinned upstream binaries, a Docker engine, the kind node image (cached; seconds when warm)"
	@echo "make review  review snapshot changes (cargo insta review)"
	@echo "make bench   every benchmark figure against its target (bring-up local and kind, MTTR accuracy, overhead, Chaos Toolkit, whole drill)"
	@echo "make fuzz    fuzz the suite loader for 10 minutes (nightly toolchain, cargo-fuzz)"
	@echo "make down    tear down every local cluster firedrill created on this machine"
	@echo "make clean   make down, then cargo clean"

# Debian packages and the pinned upstream builds; then a Docker engine (ci/docker.sh: the
# one already running, or dockerd started with the address plan's configuration); then the
# kind backend's node image, built offline (ci/kind-image.sh; cached by a hash of its inputs).
# The set-up's builds and Cargo's build of firedrill run side by side: a cold set-up spends
# minutes downloading and linking with a core idle. When the Cargo build fails, the set-up
# is still waited for, so that nothing is left running.
setup:
	ci/setup.sh >/dev/null & setup=$$!; \
	  status=0; $(CARGO) build -q -p firedrill --bin firedrill || status=$$?; \
	  wait $$setup; exit $$status
	ci/docker.sh $(FIREDRILL)
	ci/kind-image.sh >/dev/null

build: setup
	$(CARGO) build --workspace --bins

# Every test binary runs even after one fails, and the leftover check runs whatever they
# returned; the exit status is the tests', or the leftover check's when they passed.
# A truly cold `make test` took 84 minutes on 2026-12-03 (the Go builds 37 of them; see the
# README), over its 60-minute budget, so three suites run in
# part or not at all here, and whole in `make drill` (and `cargo test resilience`,
# `cargo test dr-restore`, `cargo test separation`):
# - dr-restore runs its restore from a snapshot (about 70 s with its environment); its two
#   refused backups (about 45 s each) run in `make drill`;
# - resilience runs in `make drill` only (about 9 minutes): what its scenarios rest on is
#   tested here apart — stopping, pausing and resuming control-plane processes and finding
#   the leaders (tests/local_backend.rs), every path of its fault's revert (tests/safety.rs),
#   the failover rule (unit tests);
# - separation runs in `make drill` only (about 5 minutes): its drain fault's revert is
#   tested here (tests/safety.rs), its row checker and loader rules in unit tests.
NOT_IN_TEST := resilience:: dr-restore::truncated-backup-refused dr-restore::garbled-backup-refused separation::
test: build
	@mkdir -p target && ci/leftovers.sh --record target/leftovers.before
	status=0; $(CARGO) test --workspace --no-fail-fast -- $(addprefix --skip ,$(NOT_IN_TEST)) || status=$$?; \
	  ci/leftovers.sh --since target/leftovers.before || { [[ $$status != 0 ]] || status=1; }; \
	  exit $$status

# The living document is written from the run's report when the run reached verdicts (0 or
# 1: a mismatch belongs in it too); the run's exit status is kept, or 2 when only the
# document could not be written.
drill: build
	status=0; $(FIREDRILL) run --backend local --report reports/latest || status=$$?; \
	  if [[ $$status -le 1 ]]; then $(FIREDRILL) docs --report reports/latest || { [[ $$status != 0 ]] || status=2; }; fi; \
	  exit $$status

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
	@if [[ -x $(FIREDRILL) ]]; then $(FIREDRILL) down --all; fi

clean: down
	$(CARGO) clean
