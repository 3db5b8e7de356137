# Outpost — non-recursive GNU make.
#   make              build build/rel/outpost (optimised)
#   make test         build with ASan+UBSan and run every test (unit, fuzz replay, integration)
#   make bench        benchmark harness (Outpost vs nginx vs HAProxy); make bench-quick for < 3 min
#   make fuzz         build libFuzzer targets with clang ($(BUILD_ROOT)/fuzz/)
#   make unit | fuzz-replay | integration | test-pg   one test layer (test-pg: the primary on PostgreSQL)
#   make check-format | check-layers         the clang-format check; the include order of docs/layers.md
#   BUILD_ROOT=dir    put every build output under dir instead of build/
#   V=1 verbose, DEBUG=1 unoptimised, SAN=address,undefined sanitizers (SAN= to disable in make test)
.DEFAULT_GOAL := all
.SUFFIXES:
.SECONDARY:
SHELL := /bin/bash

BUILD_ROOT ?= build
DEPS_PREFIX := $(shell scripts/deps.sh --print-prefix)
DEPS_STAMP  := $(BUILD_ROOT)/.deps-stamp
LLHTTP_SRC  := /usr/share/llhttp
LLHTTP_INC  := /usr/share/include/llhttp

ifeq ($(V),1)
Q :=
else
Q := @
endif

CC      ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
OPT     := -O2
ifeq ($(DEBUG),1)
OPT     := -O0 -g3
endif
SANFLAGS :=
ifneq ($(SAN),)
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

# Build variants live side by side: build/rel, build/san, build/debug.
VARIANT := rel
ifneq ($(SAN),)
VARIANT := san
else ifeq ($(DEBUG),1)
VARIANT := debug
endif
B := $(BUILD_ROOT)/$(VARIANT)

WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-missing-field-initializers
CPPFLAGS := -D_GNU_SOURCE -I. -isystem $(DEPS_PREFIX)/include -isystem /usr/include/postgresql -isystem $(LLHTTP_INC)

CFLAGS  := -std=c17 $(OPT) -g $(WARN) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS := $(SANFLAGS) -pthread
LDLIBS  := $(DEPS_PREFIX)/lib/libwolfssl.a $(DEPS_PREFIX)/lib/liburing.a -lcurl -lcjson -lsqlite3 -lpq -lyaml -lssh -lz -lutil -lm

# Every module folder is globbed, so adding a .c file needs no Makefile edit.
MODULES  := core util db tls http proto ctl wsapp runner region primary cli wsproxy agent
LIB_SRCS := $(filter-out cli/main.c,$(foreach m,$(MODULES),$(wildcard $(m)/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
# The dashboard's files (web/) become one generated C file of byte arrays (scripts/embed-web.py).
WEB_FILES := $(wildcard web/*)
WEB_GEN   := $(B)/gen/web_assets.c
# The terminal page's xterm.js, from npm (scripts/deps.sh installs it into its cache): served as NAME=PATH.
NODE_MODULES := $(shell scripts/deps.sh --print-node-modules)
WEB_VENDOR := xterm.mjs=$(NODE_MODULES)/@xterm/xterm/lib/xterm.mjs \
              xterm.css=$(NODE_MODULES)/@xterm/xterm/css/xterm.css \
              addon-fit.mjs=$(NODE_MODULES)/@xterm/addon-fit/lib/addon-fit.mjs
LIB_OBJS  += $(B)/gen/web_assets.o
LLHTTP_OBJS := $(B)/third_party/llhttp/api.o $(B)/third_party/llhttp/http.o $(B)/third_party/llhttp/llhttp.o
LIB      := $(B)/liboutpost.a
BIN      := $(B)/outpost

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/tests/%_replay)

.PHONY: all deps test test-faults test-pg unit fuzz-replay integration fuzz bench bench-quick clean format check-format check-layers

all: $(BIN)

deps: $(DEPS_STAMP)
# Re-run the dependency script whenever it changes (new packages) or its cached builds are missing.
$(DEPS_STAMP): scripts/deps.sh $(wildcard $(DEPS_PREFIX)/.done)
	scripts/deps.sh
	@mkdir -p $(@D) && touch $@

$(B)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(WEB_GEN): scripts/embed-web.py scripts/deps.sh $(WEB_FILES) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)python3 scripts/embed-web.py web $@ $(WEB_VENDOR)

$(B)/gen/web_assets.o: $(WEB_GEN) primary/web_assets.h | $(DEPS_STAMP)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# llhttp's generated C is compiled as-is from Debian's node-llhttp, with its own warnings relaxed.
$(B)/third_party/llhttp/%.o: $(LLHTTP_SRC)/%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      llhttp/$*.c")
	$(Q)$(CC) -std=gnu11 $(OPT) -g $(SANFLAGS) -I$(LLHTTP_INC) -w -c $< -o $@

$(LIB): $(LIB_OBJS) $(LLHTTP_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(B)/cli/main.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	$(Q)ln -sfn $(VARIANT)/outpost $(BUILD_ROOT)/outpost

$(B)/tests/%: $(B)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets are linked with a small driver that replays the committed corpus (no clang needed).
$(B)/tests/%_replay: $(B)/tests/fuzz/%.o $(B)/tests/fuzz/replay_main.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make test: sanitizers on unless the caller says SAN= explicitly. The release binary (the quickstart's) is
# built first: the optimiser's warnings differ between the variants, and -Werror makes them errors.
ifeq ($(origin SAN),undefined)
test:
	$(Q)$(MAKE) --no-print-directory SAN= all
	$(Q)$(MAKE) --no-print-directory SAN=address,undefined test
else
test: $(BIN) $(UNIT_BINS) $(FUZZ_REPLAY) $(B)/bench/loadgen
	$(Q)OUTPOST_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) tests/run.sh
endif

test-pg: $(BIN) $(UNIT_BINS)
	$(Q)OUTPOST_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) tests/run.sh pg

unit: $(UNIT_BINS)
	$(Q)OUTPOST_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) tests/run.sh unit

fuzz-replay: $(FUZZ_REPLAY)
	$(Q)OUTPOST_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) tests/run.sh fuzz

test-faults: $(BIN)
	$(Q)OUTPOST_FAULTS=full OUTPOST_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) tests/run.sh faults

integration: $(BIN) $(B)/bench/loadgen
	$(Q)OUTPOST_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) tests/run.sh integration

check-format:
	$(Q)bash tests/integration/format.sh

# Every #include points down the module stack of docs/layers.md (also run by make test).
check-layers:
	$(Q)scripts/check-layers.sh

FUZZ_CC := clang
fuzz: $(WEB_GEN) | $(DEPS_STAMP)
	$(Q)mkdir -p $(BUILD_ROOT)/fuzz
	$(Q)for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  echo "  FUZZ    $$n"; \
	  $(FUZZ_CC) -std=c17 -O1 -g -fsanitize=fuzzer,address,undefined $(CPPFLAGS) -o $(BUILD_ROOT)/fuzz/$$n $$f \
	    $(filter-out cli/main.c,$(LIB_SRCS)) $(WEB_GEN) $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c $(LLHTTP_SRC)/llhttp.c \
	    $(LDLIBS) || exit 1; done

bench: $(BIN)
	$(Q)OUTPOST_BIN=$(abspath $(BIN)) bench/run.sh full

bench-quick: $(BIN)
	$(Q)OUTPOST_BIN=$(abspath $(BIN)) bench/run.sh quick

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD_ROOT)

-include $(shell find $(BUILD_ROOT) -name '*.d' 2>/dev/null)

# The benchmark harness keeps its own rules (load generator, configs) next to it.
-include bench/bench.mk

# Packaging: make deb, make test-deploy, make test-container.
include deploy/deb.mk
