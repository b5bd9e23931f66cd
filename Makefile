# surgewall: the front door. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
# loom builds use their own target dir so they never invalidate the normal build cache.
LOOM_ENV := RUSTFLAGS="--cfg surgewall_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
LOOM_TESTS := loom loom_bulkhead loom_keyed

.PHONY: all demo test lint test-rust test-loom bench bench-check clean

all: test

## demo: the main job on embedded defaults (simulated time, no services needed)
demo:
	$(CARGO) run --quiet --release -p surgewall --example demo

## test: everything that exists: lint, unit/integration/doc tests, loom models, benches once
test: lint test-rust test-loom bench-check
	@echo "make test: all suites passed"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace
	$(CARGO) run --quiet --release -p surgewall --example demo > /dev/null

test-loom:
	$(LOOM_ENV) $(CARGO) test -p surgewall --release $(foreach t,$(LOOM_TESTS),--test $(t))

## bench: criterion benches (baselines, surgewall and peers in one run)
bench:
	$(CARGO) bench -p surgewall-benches

## bench-check: every bench once, in --test mode (what CI runs)
bench-check:
	$(CARGO) bench -p surgewall-benches -- --test

clean:
	$(CARGO) clean
