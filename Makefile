# rip: the two first commands are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test e2e lint demo-clean

## Run the whole pipeline on examples/apps.json into target/demo-root.
demo:
	bash scripts/demo

## Build every binary, then run all tests but the systemd container suite.
test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

## The end-to-end suite under a real systemd 252 (as root; boots a container).
e2e:
	$(CARGO) build --workspace --bins
	bash tests/e2e/run

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

demo-clean:
	rm -rf target/demo-root target/demo

# --- docs (xtask) ---
