# surgewall: the front door. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
# loom builds use their own target dir so they never invalidate the normal build cache.
LOOM_ENV := RUSTFLAGS="--cfg surgewall_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
LOOM_TESTS := loom loom_bulkhead loom_keyed loom_events
# npm ci writes this file last: the browser tests' dependencies are in place.
BROWSER_DEPS := agent/tests/browser/node_modules/.package-lock.json

.PHONY: all demo dashboard dashboard-screenshot test lint test-rust test-loom test-agent-api test-dashboard test-c test-python test-go bench bench-c bench-python bench-go bench-check header clean

all: test

## demo: the main job on embedded defaults (simulated time, no services needed)
demo:
	$(CARGO) run --quiet --release -p surgewall --example demo

## dashboard: the agent's dashboard with synthetic traffic; open http://127.0.0.1:9464/
## (BREAKERS=1000 for a thousand breakers)
dashboard:
	$(CARGO) run --quiet --release -p surgewall-agent --example dashboard -- --port 9464 $(if $(BREAKERS),--breakers $(BREAKERS))

## dashboard-screenshot: docs/dashboard.png, the README's picture (under a minute of traffic)
dashboard-screenshot: $(BROWSER_DEPS)
	$(CARGO) build --quiet -p surgewall-agent --example dashboard
	node agent/tests/browser/screenshot.mjs

## test: everything that exists: lint, unit/integration/doc tests, loom models, benches once
test: lint bench-check test-loom test-rust test-agent-api test-dashboard test-c test-python test-go
	@echo "make test: all suites passed"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --quiet --no-deps -p surgewall -p surgewall-agent -p surgewall-benches

test-rust:
	$(CARGO) test --workspace
	$(CARGO) run --quiet --release -p surgewall --example demo > /dev/null

test-loom:
	$(LOOM_ENV) $(CARGO) test -p surgewall --release $(foreach t,$(LOOM_TESTS),--test $(t))

## test-agent-api: schemathesis (PyPI) against the agent's OpenAPI document, on a live server
test-agent-api:
	agent/tests/api/run.sh

## test-dashboard: the dashboard in headless chromium (playwright-core from npm), against the
## dashboard example; screenshots in target/browser-artifacts/
test-dashboard: $(BROWSER_DEPS)
	$(CARGO) build --quiet -p surgewall-agent --example dashboard
	cd agent/tests/browser && npm test

$(BROWSER_DEPS): agent/tests/browser/package.json agent/tests/browser/package-lock.json
	cd agent/tests/browser && npm ci --no-audit --no-fund --silent

## test-c: the C suites (header hygiene, ASan/UBSan/LSan, valgrind, example; bindings/c/README.md)
test-c:
	$(MAKE) -C bindings/c test

## test-python: the Python package (pip builds the library), pytest + mypy --strict
test-python:
	$(MAKE) -C bindings/python test

## test-go: the Go binding (vet, -race, forced GC, shared scenarios); builds the library first
test-go:
	$(MAKE) -C bindings/go test

## bench: criterion benches (baselines, surgewall and peers in one run)
bench:
	$(CARGO) bench -p surgewall-benches
	$(CARGO) run --quiet --release -p surgewall-benches --bin keyed_memory
	$(CARGO) run --quiet --release -p surgewall-benches --bin keyed_interleaved
	$(CARGO) run --quiet --release -p surgewall-benches --bin tail_latency
	$(CARGO) run --quiet --release -p surgewall-benches --bin agent_overhead
	$(CARGO) run --quiet --release -p surgewall-benches --bin agent_stream
	$(MAKE) bench-c
	$(MAKE) bench-python
	$(MAKE) bench-go

## bench-c: the C guarded call beside the Rust one, in one run (budget G4)
bench-c:
	$(MAKE) -C bindings/c bench

## bench-python: G5, surgewall vs pybreaker and circuitbreaker in one timeit run
bench-python:
	$(MAKE) -C bindings/python bench

## bench-go: G6, Go Execute vs gobreaker and failsafe-go, -cpu=1,2 -benchmem
bench-go:
	$(MAKE) -C bindings/go bench

## bench-check: every bench once, in --test mode, and the measuring binaries once (what CI runs)
bench-check:
	$(CARGO) bench -p surgewall-benches -- --test
	$(CARGO) run --quiet --release -p surgewall-benches --bin keyed_memory > /dev/null
	$(CARGO) run --quiet --release -p surgewall-benches --bin keyed_interleaved > /dev/null
	$(CARGO) run --quiet --release -p surgewall-benches --bin tail_latency > /dev/null
	$(CARGO) run --quiet --release -p surgewall-benches --bin agent_overhead -- --quick > /dev/null
	$(CARGO) run --quiet --release -p surgewall-benches --bin agent_stream -- --quick > /dev/null

## header: regenerate include/surgewall.h from ffi/ (a test fails when it is stale)
header:
	$(CARGO) run --quiet -p surgewall-ffi --example gen_header

clean:
	$(CARGO) clean
