# A thin wrapper around Meson: `make run` and `make check` are the two
# commands the README promises; both install missing Debian packages first.
BUILD ?= build
MESON_OPTS ?=

.PHONY: all deps test-deps build run check clean

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@scripts/deps.sh run
	@scripts/demo.sh $(BUILD)/src/cairn

check: test-deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

clean:
	rm -rf $(BUILD)
