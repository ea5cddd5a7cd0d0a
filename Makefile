# A thin wrapper around Meson: `make run` and `make check` are the two
# commands the README promises; both install missing Debian packages first.
BUILD ?= build
MESON_OPTS ?=
# `make install`: the program, man pages, systemd units, bash completion
# (docs/INSTALL.md).  Configuration is read from $(SYSCONFDIR)/cairn.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=

.PHONY: all deps test-deps build run check install clean

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

install: build
	meson configure $(BUILD) -Dprefix=$(PREFIX) -Dsysconfdir=$(SYSCONFDIR)
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir $(DESTDIR))

clean:
	rm -rf $(BUILD)
