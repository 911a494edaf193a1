# Thin wrapper over CMake so that two commands do all the set-up on a fresh
# Debian 12 machine: `make demo` and `make test`.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build lint test test-asan memcheck demo bench fuzz mutate install clean deb dist chaos crash-all

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# The whole suite on the normal build, then again under ASan+UBSan. A test
# that fails fails the suite: there is no retry.
CTEST_FLAGS ?= --output-on-failure

# luacheck, clang-format, long functions, the engine/bindings boundary
# (scripts/lint.sh); part of `make test`, so a new warning fails CI.
lint: deps
	@bash scripts/lint.sh

test: build lint
	ctest --test-dir $(BUILD) $(CTEST_FLAGS) -j$(JOBS)
	@$(MAKE) --no-print-directory test-asan

# The random-kill loop against the served world (issue #29.2): KILLS kills
# (default 100) at random moments of rollouts and rollbacks, each resumed
# and checked (tests/chaos/random_kills.sh; SEED=N repeats a run). Not in
# `make test`: about 15 minutes on 2 cores.
KILLS ?= 100
chaos: build
	bash tests/chaos/random_kills.sh $(BUILD)/runbook $(CURDIR) $(KILLS)

# Every way of cutting a run short at every change (SIGKILL, SIGINT, step
# timeout, lost reply), where `make test` takes one per change by turns.
crash-all: build
	CRASH_MODES="kill int timeout lost" bash tests/e2e/test_crash_points.sh $(BUILD)/runbook $(CURDIR)

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRUNBOOK_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) $(CTEST_FLAGS) -j$(JOBS)

# The suite's Lua tests and the demo under valgrind (normal build).
memcheck: build
	bash tests/memcheck.sh $(BUILD)/runbook

# The main job: the Tailscale rollout rehearsed on the built-in scenario.
demo: build
	./$(BUILD)/runbook run rollout.lua --dry-run --scenario sample

bench: build
	bash bench/run.sh $(BUILD)/runbook

# libFuzzer on the decoders, yaml.edit, the journal reader, the scenario
# loader and the CLI parser, FUZZ_SECONDS (default 600) each, two at a
# time; installs clang. Not part of `make test` (docs/reliability.md).
fuzz:
	@bash scripts/fuzz.sh

# Mutation check: each mutant of tests/mutants/mutants.txt applied to a
# scratch copy (MUTATE_DIR, default /tmp/runbook-mutate-$USER; one build
# directory reused), built, and the tests it names run; fails when one
# survives. Not part of `make test`. MUTANTS="id ..." runs some only.
mutate: deps
	@python3 tests/mutants/mutate.py $(MUTANTS)

install: build
	cmake --install $(BUILD)

# The Debian package (debian/: dh with the cmake buildsystem), built in a
# copy of the tree; the .deb, .changes and .buildinfo land in dist/, and
# lintian must be clean at --fail-on error,warning.
deb: deps
	@bash scripts/build-deb.sh dist
	lintian --fail-on error,warning dist/runbook_*.deb

# The release tarball dist/runbook-VERSION-linux-ARCH.tar.gz and
# dist/SHA256SUMS: Lua, libuv, libyaml and jansson linked statically from
# Debian's .a files (build-dist/), the runbooks, man pages, completions.
dist: deps
	@bash scripts/dist.sh dist

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
