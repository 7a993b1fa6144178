# The README's two commands.
#   make demo   install what is missing, build, record the 4000-block example, replay, report
#   make test   install what is missing, build, run every test (plain and ASan+UBSan) via ctest
BUILD      ?= build
BUILD_SAN  ?= build-san
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
MAKEFLAGS  += --no-print-directory
# cmake's generated makefiles must not inherit our flags (they would print every directory).
CMAKE_BUILD = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build

.PHONY: all deps build build-san test test-plain test-san demo bench clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@$(CMAKE_BUILD) $(BUILD) -j $(JOBS) -- --no-print-directory

build-san: deps
	@cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DFRAGSCOPE_SANITIZE=ON >/dev/null
	@$(CMAKE_BUILD) $(BUILD_SAN) -j $(JOBS) -- --no-print-directory

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-san: build-san
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -LE nosan

test: test-plain test-san

demo: build
	@./scripts/demo.sh $(BUILD)

bench: build
	@./bench/run.sh $(BUILD)
	@./tests/replayer/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
