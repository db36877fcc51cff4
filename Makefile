# Tollgate: two commands.
#   make run    install what is missing, build in release mode, run the demo relay
#   make test   install what the tests need, build everything, run every test
SWIFT ?= swift
.PHONY: run test bench build release deps-run deps-test clean

deps-run:
	@bash scripts/install-deps.sh run

deps-test:
	@bash scripts/install-deps.sh test

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release

run: deps-run release
	@bash demo/run.sh

test: deps-test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip LiveRelayTests
	$(SWIFT) test --skip-build --filter LiveRelayTests

bench: deps-test release
	@bash bench/run.sh

clean:
	rm -rf .build demo/var demo/certs
