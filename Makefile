# The appliance: top-level build.
#
#   make deps    install Debian packages and npm test peers (idempotent, fast when done)
#   make         build every library and program (programs in bin/)
#   make test    deps + build + every test; last line "N passed, N failed"
#   make check   the whole suite again under ASan+UBSan (clang), leak checking on
#   make fuzz    build the libFuzzer targets and run each for FUZZ_SECONDS (default 30)
#   make bench   benchmarks against their baselines (never part of make test)
#   make demo    the main job end to end on 127.0.0.1
#
# Layout convention (so new modules need no Makefile edits):
#   DIR/*.c except DIR/main.c  -> $(B)/libDIR.a      (appliance, relay-client, billing,
#                                                     enclave/runtime,
#                                                     enclave, enclave/train, parent, keystore)
#   DIR/main.c                 -> $(BIN)/appliance-DIR (enclave, parent, keystore)
#   appliance/cli/*.c          -> $(BIN)/appliance
#   tests/unit/*_test.c        -> $(B)/tests/unit/*_test  (linked with every library)
#   tests/bench/*.c            -> $(B)/tests/bench/*
#   tests/fuzz/fuzz_*.c        -> build/fuzz/fuzz_*       (clang, libFuzzer)
#
# Several builds can live side by side: `make B=build/x BIN=build/x/bin`.

.DEFAULT_GOAL := all
MODE ?= release
ifeq ($(MODE),asan)
B ?= build/asan
BIN ?= build/asan/bin
CC := clang
else ifeq ($(MODE),fuzz)
B ?= build/fuzz
BIN ?= build/fuzz/bin
CC := clang
else
B ?= build/release
BIN ?= bin
endif

# Quiet by default; `make V=1` shows the commands.
ifeq ($(V),1)
Q :=
else
Q := @
MAKEFLAGS += --no-print-directory
endif

PKGS := libsecp256k1 libcjson libsodium openssl libcbor libwebsockets libcurl inih libqrencode openblas
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wvla -Wpointer-arith -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -Wimplicit-fallthrough
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -g $(WARN) -I. $(PKG_CFLAGS) -MMD -MP -pthread
ifeq ($(MODE),asan)
CFLAGS_MODE := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_MODE := -fsanitize=address,undefined
else ifeq ($(MODE),fuzz)
CFLAGS_MODE := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -DFUZZING
LDFLAGS_MODE := -fsanitize=address,undefined
else
CFLAGS_MODE := -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2
LDFLAGS_MODE := -Wl,-z,relro,-z,now
endif
CFLAGS += $(CFLAGS_BASE) $(CFLAGS_MODE)
LDLIBS := $(PKG_LIBS) -lm -lpthread

# Libraries, most dependent first (static link order).
LIBDIRS := keystore parent enclave enclave/runtime billing relay-client enclave/train appliance
libname = $(B)/lib$(subst /,-,$(1)).a
# EXCLUDE: sources to leave out of this build (someone's work in progress).
EXCLUDE ?=
libsrcs = $(filter-out $(1)/main.c $(EXCLUDE),$(wildcard $(1)/*.c))
LIBS := $(foreach d,$(LIBDIRS),$(if $(call libsrcs,$(d)),$(call libname,$(d))))

define LIB_template
$(call libname,$(1)): $(patsubst %.c,$(B)/%.o,$(call libsrcs,$(1)))
	@mkdir -p $$(@D)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach d,$(LIBDIRS),$(if $(call libsrcs,$(d)),$(eval $(call LIB_template,$(d)))))

PROGDIRS := $(foreach d,enclave parent keystore,$(if $(wildcard $(d)/main.c),$(d)))
PROGS := $(BIN)/appliance $(foreach d,$(PROGDIRS),$(BIN)/appliance-$(d))

CLI_SRCS := $(filter-out $(EXCLUDE),$(wildcard appliance/cli/*.c))
$(BIN)/appliance: $(patsubst %.c,$(B)/%.o,$(CLI_SRCS)) $(LIBS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_MODE) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

define PROG_template
$(BIN)/appliance-$(1): $(B)/$(1)/main.o $(LIBS)
	@mkdir -p $$(@D)
	$(Q)$$(CC) $$(LDFLAGS_MODE) -o $$@ $$(filter %.o %.a,$$^) $$(LDLIBS)
endef
$(foreach d,$(PROGDIRS),$(eval $(call PROG_template,$(d))))

UNIT_SRCS := $(wildcard tests/unit/*_test.c)
UNIT_BINS := $(patsubst %.c,$(B)/%,$(UNIT_SRCS))
TESTLIB_SRCS := $(wildcard tests/lib/*.c)
TESTLIB_OBJS := $(patsubst %.c,$(B)/%.o,$(TESTLIB_SRCS))
$(B)/tests/unit/%: $(B)/tests/unit/%.o $(TESTLIB_OBJS) $(LIBS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_MODE) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst %.c,$(B)/%,$(BENCH_SRCS))
$(B)/tests/bench/%: $(B)/tests/bench/%.o $(TESTLIB_OBJS) $(LIBS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_MODE) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

.PHONY: all deps test test-run check fuzz fuzz-build bench demo clean tests-build eif
.SECONDARY:

all: $(LIBS) $(PROGS)

tests-build: all $(UNIT_BINS) $(BENCH_BINS)

deps:
	@scripts/deps.sh

# The README's test command: installs what it needs, builds, runs everything.
test: deps
	@$(MAKE) --no-print-directory tests-build
	@tests/run.sh "$(CURDIR)/$(BIN)" "$(CURDIR)/$(B)"

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
check: deps
	@$(MAKE) --no-print-directory MODE=asan tests-build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lib/lsan.supp:print_suppressions=0 \
	  APPLIANCE_SANITIZED=1 tests/run.sh "$(CURDIR)/build/asan/bin" "$(CURDIR)/build/asan"

FUZZ_SECONDS ?= 30
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
fuzz: deps
	@$(MAKE) --no-print-directory MODE=fuzz fuzz-build
	@tests/fuzz/run.sh "$(CURDIR)/build/fuzz" $(FUZZ_SECONDS)
fuzz-build: $(LIBS) $(FUZZ_BINS)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIBS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.a,$^) $(LDLIBS)

bench: deps
	@$(MAKE) --no-print-directory tests-build
	@tests/bench/run.sh "$(CURDIR)/$(BIN)" "$(CURDIR)/$(B)"

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh "$(CURDIR)/$(BIN)"

# The enclave image (EIF) for Nitro, reproducibly (parent/Containerfile; README "Operating the
# parent"). Needs docker or podman and nitro-cli (aws-nitro-enclaves-cli): not available on the
# development machines, so this target is never part of `make test`.
CONTAINER ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
EIF_TAG ?= appliance-enclave:$(SOURCE_DATE_EPOCH)
ENCLAVE_INI ?= enclave.ini
eif:
	@test -n "$(CONTAINER)" || { echo "make eif: needs podman or docker"; exit 2; }
	@command -v nitro-cli >/dev/null || { echo "make eif: needs nitro-cli (aws-nitro-enclaves-cli)"; exit 2; }
	@test -f "$(ENCLAVE_INI)" || { echo "make eif: ENCLAVE_INI=$(ENCLAVE_INI) not found (a path inside this tree)"; exit 2; }
	$(CONTAINER) build --build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) --build-arg ENCLAVE_INI=$(ENCLAVE_INI) \
	  -f parent/Containerfile -t $(EIF_TAG) .
	@mkdir -p build
	nitro-cli build-enclave --docker-uri $(EIF_TAG) --output-file build/appliance-enclave.eif | tee build/appliance-enclave.eif.json

clean:
	rm -rf build bin

-include $(shell find $(B) -name '*.d' 2>/dev/null)
