# Sphere: the two commands are `make demo` and `make test`. See README.md.
#
#   make deps    install missing Debian packages (scripts/deps.sh)
#   make build   configure and build into build/
#   make test    build, then run the suite: fuzz smoke (clang + libFuzzer),
#                ASan+UBSan build, then the normal build (ctest summary last)
#   make demo    build, then run the platform end to end on its defaults
#                (scripts/demo.sh: service, broker, device, update, telemetry)
#   make demo-rot  the root of trust alone (sphere-demo)
#   make fuzz    build the fuzzers and run each for FUZZ_SECONDS (default 60)
#   make bench   build, then run every benchmark in bench/
#   make format  clang-format every C file in place
SHELL := /bin/bash
# cmake --build runs make underneath: keep its "Entering directory" lines out.
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
SMOKE_SECONDS ?= 15
CMAKE_FLAGS ?=

.PHONY: all deps build build-asan build-fuzz test demo demo-rot fuzz bench format clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSPHERE_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)

build-fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPHERE_FUZZ=ON \
		-DSPHERE_FUZZ_SECONDS=$(SMOKE_SECONDS) $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

test: build build-asan build-fuzz
	@echo "== fuzz smoke: each target for $(SMOKE_SECONDS)s"
	@cd build-fuzz && ctest --output-on-failure -j $(JOBS)
	@echo "== ASan+UBSan suite"
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)
	@echo "== suite"
	@cd build && ctest --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo.sh

demo-rot: build
	@build/bin/sphere-demo

fuzz: build-fuzz
	@for f in build-fuzz/bin/fuzz_*; do \
		n=$$(basename $$f); echo "== $$n for $(FUZZ_SECONDS)s"; \
		mkdir -p build-fuzz/corpus-$$n; \
		$$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
			build-fuzz/corpus-$$n fuzz/corpus/$$n || exit 1; \
	done

bench: build
	@for b in build/bin/bench_*; do echo "== $$(basename $$b)"; $$b || exit 1; done

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@for d in build build-asan; do scripts/pg-test.sh stop $$d/pg-test; done # test clusters
	rm -rf build build-asan build-fuzz
