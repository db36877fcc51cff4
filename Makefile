# Tollgate: two commands.
#   make run    install what is missing, build in release mode, run the demo relay
#   make run-cluster  the same with two nodes on a throwaway PostgreSQL
#   make test   install what the tests need, build everything, run every test
#   make fuzz   every fuzz target for FUZZ_SECONDS (default 60) each
#   make crash-test  the crash loop (CRASH_ROUNDS, default 20) and power-cut loop (POWERCUT_ROUNDS, default 10)
#   make install PREFIX=/usr/local DESTDIR=…   release build, then SPEC §8's layout; make uninstall
#   make test-install-release   the install tests on the release build (what make install ships)
SWIFT ?= swift
.PHONY: run run-cluster test test-install-release bench build release deps-run deps-test clean crash-test fuzz fuzz-short install uninstall

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

# Two nodes on a throwaway PostgreSQL, one queue and one rate limit (README "Running a cluster").
run-cluster: deps-run release
	@bash scripts/install-deps.sh cluster
	@bash demo/cluster/run.sh

test: deps-test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip LiveRelayTests
	CRASH_ROUNDS=$${CRASH_ROUNDS:-20} POWERCUT_ROUNDS=$${POWERCUT_ROUNDS:-10} $(SWIFT) test --skip-build --filter LiveRelayTests
	$(MAKE) fuzz-short

# The crash loop and the power-loss test alone (RELIABILITY E4; README "Crash testing"),
# in full as in `make test` (CI); `swift test` by hand runs 3 rounds of each.
# CRASH_SEED=N replays the kill times and message sizes.
crash-test: deps-test
	$(SWIFT) build --build-tests
	CRASH_ROUNDS=$${CRASH_ROUNDS:-20} POWERCUT_ROUNDS=$${POWERCUT_ROUNDS:-10} $(SWIFT) test --skip-build --filter CrashLoopTests

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

# BEGIN install
# README, "Install". CONFIG=debug installs the debug products (the test does, with
# BUILD=no: they are built already); SYSCONFDIR defaults to PREFIX/etc.
PREFIX ?= /usr/local
SYSCONFDIR ?= $(PREFIX)/etc
CONFIG ?= release
BINDIR ?= .build/$(CONFIG)
BUILD ?= yes
install:
ifeq ($(BUILD),yes)
	$(SWIFT) build -c $(CONFIG)
endif
	PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) DESTDIR=$(DESTDIR) CONFIG=$(CONFIG) BINDIR=$(BINDIR) bash scripts/install.sh install

# The install tests of `make test` (which installs the debug build it has) on the
# release build instead: the products `make install` ships, with their RUNPATH and
# plugin lookup, installed into a temporary DESTDIR and run from there.
test-install-release: deps-test
	$(SWIFT) build -c release
	$(SWIFT) build --build-tests
	TOLLGATE_INSTALL_CONFIG=release $(SWIFT) test --skip-build --filter InstallLiveTests

uninstall:
	PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) DESTDIR=$(DESTDIR) CONFIG=$(CONFIG) bash scripts/install.sh uninstall
# END install
