# Tollgate: two commands.
#   make run    install what is missing, build in release mode, run the demo relay
#   make test   install what the tests need, build everything, run every test
SWIFT ?= swift
.PHONY: run test bench build release deps-run deps-test clean fuzz fuzz-short

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
	$(MAKE) fuzz-short

bench: deps-test release
	@bash bench/run.sh

clean:
	rm -rf .build .build-fuzz demo/var demo/certs

# BEGIN fuzz
# libFuzzer targets in Fuzz/ (README, "Fuzzing"): built with ASan in .build-fuzz, each run
# for FUZZ_SECONDS after replaying its committed corpus; `make test` runs the short form.
FUZZ_SECONDS ?=
fuzz: deps-test
	SWIFT=$(SWIFT) FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh full

fuzz-short:
	SWIFT=$(SWIFT) FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh short
# END fuzz
