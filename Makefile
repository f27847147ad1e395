# attnbench front door. `make run` and `make test` install what is missing, build, and go.
# BUILD=build is the release build; `make asan` builds and tests with address + undefined
# sanitizers in build-asan.

DEBS := meson ninja-build pkg-config gcc libc6-dev libopenblas-dev libhdf5-dev hdf5-tools \
        libpng-dev libyaml-dev libcriterion-dev gnuplot-nox fonts-dejavu-core zlib1g-dev \
        libjansson-dev libopenmpi-dev openmpi-bin python3-numpy
# (python3-numpy runs tests/fixtures/external_window.py, the external method of test_ingest.c;
# Open MPI is optional for the build; it is listed so that `make test` includes the 2-rank
# `mpirun` test of tests/test_longrun.c)
BUILD ?= build
AB := $(BUILD)/cmd/attnbench
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run test baseline asan fuzz clean format

all: build

# Installs the Debian packages that are missing (apt-get update only when something is).
deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# meson setup (first time) and ninja, their output in $(BUILD)/build.log: one line when all is
# well, the log's last lines when not.
BUILD_LOG := $(BUILD)/build.log
build: deps
	@mkdir -p $(BUILD); echo "building attnbench (log: $(BUILD_LOG))"; \
	{ [ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) --buildtype=release; } > $(BUILD_LOG) 2>&1 \
	  && ninja -C $(BUILD) >> $(BUILD_LOG) 2>&1 \
	  || { tail -n 40 $(BUILD_LOG); echo "error: the build failed (full log: $(BUILD_LOG))"; exit 1; }

# The most complete end-to-end job that exists: the default scenario (scenarios/default.yaml:
# the `model` preset with retrieve and aggregate tasks, every method of the registry over the
# default budgets in prefill and decode, and its report in reports/default/), then the dense
# kernel's speed against this machine's GEMM.
run: build
	@$(AB) scenario scenarios/default.yaml
	@$(AB) bench dense --n 4096 --d 128
	@echo "report: reports/default/report/report.md"

# The whole suite, the regression gate last (tests/test_baseline.c: the default scenario at its
# quick size must match the committed baseline, reports/baseline/default.h5, in every number, to
# tolerance; a change that moves a number on purpose updates the baseline with `make baseline` in
# the same commit). --verbose shows each suite's Criterion synthesis; meson's summary ends the run.
test: build
	@rm -rf $(BUILD)/tests/tmp # test files are named by pid: a reused pid must not find old ones
	meson test -C $(BUILD) --no-rebuild --verbose --num-processes 1

# Regenerates the committed baseline from the quick default scenario (see reports/README.md).
baseline: build
	$(AB) scenario scenarios/default.yaml --quick --no-progress --force -o $(BUILD)/default-quick > /dev/null
	@mkdir -p reports/baseline
	cp $(BUILD)/default-quick/results.h5 reports/baseline/default.h5
	cp $(BUILD)/default-quick/results.csv reports/baseline/default.csv
	cp $(BUILD)/default-quick/results-summary.csv reports/baseline/default-summary.csv
	@echo "baseline updated: commit reports/baseline/ with a message saying why the numbers moved"

asan: deps
	[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined
	ninja -C build-asan && meson test -C build-asan --print-errorlogs --num-processes 1

# The fuzzers (tests/fuzz/README.md): clang's libFuzzer with ASan + UBSan (no recovery) over
# every file reader, FUZZ_SECONDS each (default 60; FUZZ_RUNS caps executions), from the seeds
# the release build writes and the corpus earlier runs grew in build-fuzz/corpus; the table of
# executions and crashes ends the run (and is in build-fuzz/fuzz-report.md).
FUZZ_DEBS := clang libclang-rt-14-dev libomp-dev
FUZZ_TARGETS := $(addprefix tests/fuzz/fuzz_,npy npz safetensors gguf llama2c tokenizer scenario h5_workload h5_results)
fuzz: build
	@$(MAKE) --no-print-directory deps DEBS="$(FUZZ_DEBS)"
	@mkdir -p build-fuzz; [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz --buildtype=debugoptimized \
	  -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dc_args=-fno-sanitize-recover=all > build-fuzz/setup.log 2>&1 || { tail -n 20 build-fuzz/setup.log; exit 1; }
	@ninja -C build-fuzz $(FUZZ_TARGETS) > build-fuzz/build.log 2>&1 || { tail -n 40 build-fuzz/build.log; exit 1; }
	@tests/fuzz/seeds.sh $(AB) $(BUILD)/tests/fuzz/fuzz_seeds . build-fuzz/seeds ../shared
	@tests/fuzz/run.sh build-fuzz build-fuzz/seeds $(FUZZ)

format:
	clang-format -i cmd/*.c cmd/*.h lib/*/*.c lib/*/*.h tests/*.c tests/*.h

clean:
	rm -rf $(BUILD) build-asan build-fuzz
