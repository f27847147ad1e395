# attnbench front door. `make run` and `make test` install what is missing, build, and go.
# BUILD=build is the release build; `make asan` builds and tests with address + undefined
# sanitizers in build-asan.

DEBS := meson ninja-build pkg-config gcc libc6-dev libopenblas-dev libhdf5-dev hdf5-tools \
        libpng-dev libyaml-dev libcriterion-dev gnuplot-nox
BUILD ?= build
AB := $(BUILD)/cmd/attnbench
OUT ?= reports/run
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run test asan clean format

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

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The most complete end-to-end job that exists: generate the default synthetic workload (the
# `model` preset with retrieve and aggregate tasks), say what it holds, draw a few heads, sweep
# every method of the registry over the default budgets in prefill and decode, and measure the
# dense kernel.
run: build
	@mkdir -p $(OUT)
	$(AB) gen --preset model --layers 4 --heads 8 --kv-heads 4 --n 4096 --d 64 \
	  --tasks retrieve,aggregate -o $(OUT)/model.h5
	$(AB) info $(OUT)/model.h5
	$(AB) render $(OUT)/model.h5 --layer 0 --head 0 -o $(OUT)/map-L0-H0.png
	$(AB) render $(OUT)/model.h5 --layer 1 --head 2 -o $(OUT)/map-L1-H2.png
	$(AB) render $(OUT)/model.h5 --layer 2 --head 5 -o $(OUT)/map-L2-H5.png
	$(AB) run $(OUT)/model.h5 --phase both --decode-queries 64 -o $(OUT)/results.h5
	$(AB) bench dense --n 4096 --d 128
	@echo "outputs in $(OUT)/"

test: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 1
	@cat $(BUILD)/meson-logs/testlog.txt | grep -h "Synthesis" | \
	  awk '{t+=$$4; p+=$$7; f+=$$10; c+=$$13} END {printf "Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n", t, p, f, c}'

asan: deps
	[ -f build-asan/build.ninja ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined
	ninja -C build-asan && meson test -C build-asan --print-errorlogs --num-processes 1

format:
	clang-format -i cmd/*.c cmd/*.h lib/*/*.c lib/*/*.h tests/*.c tests/*.h

clean:
	rm -rf $(BUILD) build-asan
