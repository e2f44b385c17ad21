# Thin wrapper around CMake.  `make run` and `make test` are the two commands
# README.md promises: each installs what it needs first.
BUILD     ?= build
ASAN      ?= build-asan
FUZZ      ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS      ?= $(shell nproc)
CONFIG    ?= conf/dev.json
PREFIX    ?= /usr
DESTDIR   ?=

.PHONY: all deps build run test test-fast test-asan install clean bench fuzz fuzz-build

all: build

deps:
	./scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/wimsed --config $(CONFIG)

# Everything: unit, lint, interop and fuzz-corpus tests on the release build,
# then the same suite on an ASan+UBSan build, then the libFuzzer targets built
# with clang (so that `make fuzz` cannot rot unnoticed).
test: build
	ctest --test-dir $(BUILD) --output-on-failure -j2 --timeout 600
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory fuzz-build

test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j2 --timeout 600

test-asan: deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DWI_SANITIZE=ON
	cmake --build $(ASAN) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ctest --test-dir $(ASAN) --output-on-failure -j2 --timeout 900

# Binaries into $(PREFIX)/bin, the unit, sysusers.d and tmpfiles.d files under
# $(PREFIX)/lib, the default config to /etc/wimsed (kept if present); all below
# $(DESTDIR) when set.  Then: systemd-sysusers; systemd-tmpfiles --create;
# systemctl daemon-reload; systemctl enable --now wimsed.
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# The full benchmark: a Release build in build-bench/, every scenario beside
# this machine's ceilings; prints a Markdown table, writes bench/results/latest.json.
bench: deps
	./bench/run

# libFuzzer (clang, ASan+UBSan) on every fuzz/fuzz_*.c target, FUZZ_SECONDS
# each; make test replays the corpora and builds the targets (fuzz-build).
# Installs clang when missing.
FUZZ_TARGETS := $(basename $(notdir $(wildcard fuzz/fuzz_*.c)))

fuzz-build:
	./scripts/install-deps --fuzz
	CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWI_FUZZ=ON -DWI_SANITIZE=ON -DWI_INTEROP=OFF
	cmake --build $(FUZZ) -j$(JOBS) --target $(FUZZ_TARGETS)

fuzz: fuzz-build
	./scripts/fuzz $(FUZZ) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
