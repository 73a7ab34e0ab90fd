# rip: the two first commands are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test e2e lint demo-clean

## Run the whole pipeline on examples/apps.json into target/demo-root.
demo:
	bash scripts/demo

## Build every binary, then run the tests (all but the e2e claims suite,
## which `make e2e` runs; rip-unit's and rip-audit's container tests are in).
test:
	bash scripts/deps test
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

## The end-to-end suite under a real systemd 252 (as root; boots a container).
e2e:
	bash scripts/deps e2e
	$(CARGO) build --workspace --bins
	bash tests/e2e/run
	bash rip-user/tests/e2e.sh $(or $(CARGO_TARGET_DIR),target)/debug/rip-user
	BIN_DIR=$(or $(CARGO_TARGET_DIR),target)/debug bash docs/walkthrough-check

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

demo-clean:
	rm -rf target/demo-root target/demo

# --- docs (xtask) ---
# Man pages and completions are generated from the clap definitions, each
# tool's MANUAL.md and man/src/rip.7.md, and committed; `make docs` regenerates
# them after any change there (cargo test fails while they are stale).
# `make install` copies the release binaries (build them first with
# `cargo build --release --workspace --bins`), the man pages and the bash, zsh
# and fish completions under $(DESTDIR)$(PREFIX). BUILD_DIR says where the
# binaries are (e.g. BUILD_DIR=target/debug).
PREFIX ?= /usr/local
DESTDIR ?=
bindir ?= $(PREFIX)/bin
mandir ?= $(PREFIX)/share/man
datadir ?= $(PREFIX)/share
BUILD_DIR ?= $(or $(CARGO_TARGET_DIR),target)/release
RIP_TOOLS := rip-user rip-perms rip-unit rip-audit rip-scrape

.PHONY: man completions docs docs-check install uninstall

man:
	$(CARGO) run -q -p xtask -- man

completions:
	$(CARGO) run -q -p xtask -- completions

docs:
	$(CARGO) run -q -p xtask -- all

## Exit 1 when a committed page or completion is stale.
docs-check:
	$(CARGO) run -q -p xtask -- check

install:
	@for t in $(RIP_TOOLS); do \
	  test -x "$(BUILD_DIR)/$$t" || { echo "make install: $(BUILD_DIR)/$$t is missing: run 'cargo build --release --workspace --bins' first, or set BUILD_DIR" >&2; exit 2; }; \
	done
	@set -e; for t in $(RIP_TOOLS); do \
	  install -Dm755 "$(BUILD_DIR)/$$t" "$(DESTDIR)$(bindir)/$$t"; \
	  install -Dm644 "man/$$t.1" "$(DESTDIR)$(mandir)/man1/$$t.1"; \
	  install -Dm644 "completions/bash/$$t" "$(DESTDIR)$(datadir)/bash-completion/completions/$$t"; \
	  install -Dm644 "completions/zsh/_$$t" "$(DESTDIR)$(datadir)/zsh/site-functions/_$$t"; \
	  install -Dm644 "completions/fish/$$t.fish" "$(DESTDIR)$(datadir)/fish/vendor_completions.d/$$t.fish"; \
	  echo "installed $$t"; \
	done
	install -Dm644 man/rip.7 "$(DESTDIR)$(mandir)/man7/rip.7"

uninstall:
	for t in $(RIP_TOOLS); do \
	  rm -f "$(DESTDIR)$(bindir)/$$t" "$(DESTDIR)$(mandir)/man1/$$t.1" \
	    "$(DESTDIR)$(datadir)/bash-completion/completions/$$t" \
	    "$(DESTDIR)$(datadir)/zsh/site-functions/_$$t" \
	    "$(DESTDIR)$(datadir)/fish/vendor_completions.d/$$t.fish"; \
	done
	rm -f "$(DESTDIR)$(mandir)/man7/rip.7"
