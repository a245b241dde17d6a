# porch: one Makefile for the daemons, porchctl, tests and fuzzers.
#
#   make            build build/porch-gateway, build/porch-agent, build/porchctl
#   make asan       the same with ASan+UBSan into build-asan/
#   make check      unit tests, fuzz smoke runs, system tests, a bench
#                   smoke run, then the unit and system tests again
#                   under the asan build
#   make demo       the quick start: a visitor reaches a home backend
#   make bench      side-by-side figures (bench/compare.py -> bench/RESULTS.md)
#   make bench-smoke the same, tiny, printed only: proves every setup runs
#   make bench-ab AB="REV REV..."  builds of porch against each other,
#                   interleaved (bench/ab.py; how optimisations are measured)
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc
PYTHON	?= /usr/bin/python3

PKGS	:= openssl libevent libevent_openssl yaml-0.1 jansson libsodium libcares \
	   libcurl ldns
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS	?= -O2 -g
WARN	:= -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	   -Wshadow -Wpointer-arith -Wsign-compare -Wcast-qual
# The layers: each folder sees only the headers of the folders it may
# use, so an include across layers fails to compile.  lib/ sees nothing
# else; config/, tunnel/, acme/ and ddns/ see lib/; the daemons see the
# tunnel, the config and lib/ (the agent acme/ and ddns/ too); porchctl
# needs no tunnel.
INC_lib	    := -Ilib
INC_config  := -Iconfig -Ilib
INC_tunnel  := -Itunnel -Ilib
INC_acme    := -Iacme -Ilib
INC_ddns    := -Iddns -Ilib
INC_gateway := -Igateway -Itunnel -Iconfig -Ilib
INC_agent   := -Iagent -Iacme -Iddns -Itunnel -Iconfig -Ilib
INC_ctl	    := -Ictl -Iacme -Iconfig -Ilib
# An object's include paths, chosen by its folder: lib/x.c -> $(INC_lib).
obj_inc = $(INC_$(firstword $(subst /, ,$(1))))
ALL_CFLAGS := -std=gnu11 $(CFLAGS) $(SANFLAGS) $(WARN) $(PKG_CFLAGS) \
	   -D_GNU_SOURCE -MMD -MP
LDLIBS	:= $(PKG_LIBS)

comma	:= ,

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRCS    := $(wildcard lib/*.c)
CFG_SRCS    := $(wildcard config/*.c)
TUN_SRCS    := $(wildcard tunnel/*.c)
GW_SRCS     := $(wildcard gateway/*.c)
AGENT_SRCS  := $(wildcard agent/*.c)
CTL_SRCS    := $(wildcard ctl/*.c)
ACME_SRCS   := $(wildcard acme/*.c)
DDNS_SRCS   := $(wildcard ddns/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJS    := $(call obj,$(LIB_SRCS))
CFG_OBJS    := $(call obj,$(CFG_SRCS))
TUN_OBJS    := $(call obj,$(TUN_SRCS))
GW_OBJS     := $(call obj,$(GW_SRCS))
AGENT_OBJS  := $(call obj,$(AGENT_SRCS))
CTL_OBJS    := $(call obj,$(CTL_SRCS))
ACME_OBJS   := $(call obj,$(ACME_SRCS))
DDNS_OBJS   := $(call obj,$(DDNS_SRCS))

BINS := $(BUILD)/porch-gateway $(BUILD)/porch-agent $(BUILD)/porchctl

# Unit tests: each links lib/ and only the module it tests, and sees
# the headers its module sees.
UNIT_TESTS := sni http frame bio cfg cfg_nomem jws acme log route proxy \
	      backoff hello flow replay ddns
TEST_sni_OBJS   := $(call obj,gateway/gw_sni.c)
TEST_http_OBJS  := $(call obj,gateway/gw_http.c)
TEST_frame_OBJS := $(call obj,tunnel/tun_frame.c)
TEST_bio_OBJS   := $(call obj,tunnel/tun_bio.c)
TEST_hello_OBJS := $(call obj,tunnel/tun_hello.c tunnel/tun_frame.c)
TEST_flow_OBJS  := $(call obj,tunnel/tun_flow.c)
TEST_replay_OBJS := $(call obj,tunnel/tun_replay.c)
TEST_cfg_OBJS   := $(call obj,$(CFG_SRCS))
TEST_cfg_nomem_OBJS := $(call obj,$(CFG_SRCS))
TEST_jws_OBJS   := $(call obj,acme/acme_jws.c)
TEST_acme_OBJS  := $(call obj,$(filter-out acme/acme.c acme/acme_http.c,$(ACME_SRCS)))
TEST_route_OBJS := $(call obj,gateway/gw_route.c tunnel/tun_frame.c)
TEST_proxy_OBJS := $(call obj,agent/agent_proxy.c)
TEST_backoff_OBJS :=
TEST_ddns_OBJS  := $(call obj,ddns/ddns_key.c ddns/ddns_msg.c ddns/ddns_rrset.c)
TEST_sni_INC    := $(INC_gateway)
TEST_http_INC   := $(INC_gateway)
TEST_frame_INC  := $(INC_tunnel)
TEST_bio_INC    := $(INC_tunnel)
TEST_hello_INC  := $(INC_tunnel)
TEST_flow_INC   := $(INC_tunnel)
TEST_replay_INC := $(INC_tunnel)
TEST_cfg_INC    := $(INC_config)
TEST_cfg_nomem_INC := $(INC_config)
# The loader out of memory: its allocations go through a counter that
# fails the Nth (tests/unit/test_cfg_nomem.c).
TEST_cfg_nomem_LDFLAGS := $(patsubst %,-Wl$(comma)--wrap=%,malloc calloc \
	realloc strdup strndup)
TEST_jws_INC    := $(INC_acme)
TEST_acme_INC   := $(INC_acme)
TEST_log_INC    := $(INC_lib)
TEST_route_INC  := $(INC_gateway)
TEST_proxy_INC  := $(INC_agent)
TEST_backoff_INC := $(INC_lib)
TEST_ddns_INC   := $(INC_ddns)
UNIT_BINS := $(patsubst %,$(BUILD)/tests/test_%,$(UNIT_TESTS))

FUZZERS := sni http frame cfg acme ddns
FUZZ_BINS := $(patsubst %,build-fuzz/fuzz_%,$(FUZZERS))
FUZZ_SECONDS ?= 20

.PHONY: all asan check check-unit check-system check-asan fuzz fuzz-smoke \
	fuzz-long fuzz-merge soak \
	demo bench bench-smoke bench-ab bench-uplink install clean deps

all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@test "$(V)" = 1 || echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(call obj_inc,$<) -c -o $@ $<

$(BUILD)/porch-gateway: $(GW_OBJS) $(TUN_OBJS) $(CFG_OBJS) $(LIB_OBJS)
	@test "$(V)" = 1 || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/porch-agent: $(AGENT_OBJS) $(ACME_OBJS) $(DDNS_OBJS) $(TUN_OBJS) \
	    $(CFG_OBJS) $(LIB_OBJS)
	@test "$(V)" = 1 || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/porchctl: $(CTL_OBJS) $(ACME_OBJS) $(CFG_OBJS) $(LIB_OBJS)
	@test "$(V)" = 1 || echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS)

.SECONDEXPANSION:
$(BUILD)/tests/test_%: tests/unit/test_%.c $$(TEST_$$*_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@test "$(V)" = 1 || echo "  TEST-CC $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(TEST_$*_INC) $(TEST_$*_LDFLAGS) -o $@ $^ \
	    $(LDLIBS) -lcmocka

asan:
	$(MAKE) BUILD=build-asan \
	    SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    CFLAGS="-O1 -g" all unit-bins build-asan/rawagent build-asan/rawgateway \
	    build-asan/ddnsc

unit-bins: $(UNIT_BINS)

check-unit: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do echo "== $$t"; $$t || exit 1; done

check-system: all $(BUILD)/tls_rate $(BUILD)/rawagent $(BUILD)/rawgateway \
	    $(BUILD)/ddnsc
	PORCH_BUILD=$(BUILD) $(PYTHON) -m pytest -q tests/system

check-asan: asan
	@for t in $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BINS)); do \
	    echo "== $$t"; $$t || exit 1; done
	PORCH_BUILD=build-asan PORCH_ASAN=1 $(PYTHON) -m pytest -q tests/system

check: deps
	$(MAKE) all check-unit
	$(MAKE) fuzz-smoke
	$(MAKE) check-system
	$(MAKE) bench-smoke
	$(MAKE) check-asan

# Fuzz targets: libFuzzer with ASan+UBSan, built by clang.
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined \
	$(PKG_CFLAGS) -D_GNU_SOURCE $(WARN)
FUZZ_sni   := gateway/gw_sni.c lib/name.c
FUZZ_http  := gateway/gw_http.c lib/name.c
FUZZ_frame := tunnel/tun_frame.c lib/name.c lib/log.c lib/mono.c
FUZZ_cfg   := $(CFG_SRCS) $(LIB_SRCS)
FUZZ_acme  := acme/acme_parse.c acme/acme_crypto.c acme/acme_jws.c \
	lib/log.c lib/mono.c
# A target is built in one compiler run: its module's layer's headers.
FUZZ_ddns  := ddns/ddns_key.c ddns/ddns_msg.c ddns/ddns_rrset.c
FUZZ_sni_INC   := $(INC_gateway)
FUZZ_http_INC  := $(INC_gateway)
FUZZ_frame_INC := $(INC_tunnel)
FUZZ_cfg_INC   := $(INC_config)
FUZZ_acme_INC  := $(INC_acme)
FUZZ_ddns_INC  := $(INC_ddns)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_$$*)
	@mkdir -p build-fuzz
	@echo "  FUZZ-CC $@"
	$(Q)clang $(FUZZ_CFLAGS) $(FUZZ_$*_INC) -o $@ $^ $(PKG_LIBS)

fuzz: $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@for f in $(FUZZERS); do \
	    echo "== fuzz_$$f for $(FUZZ_SECONDS)s"; \
	    mkdir -p build-fuzz/corpus-$$f; \
	    build-fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -max_len=20000 \
	        -print_final_stats=0 build-fuzz/corpus-$$f tests/fuzz/corpus/$$f \
	        >build-fuzz/fuzz_$$f.log 2>&1 || \
	        { tail -50 build-fuzz/fuzz_$$f.log; exit 1; }; \
	    grep -E '^#[0-9]+ +DONE' build-fuzz/fuzz_$$f.log || true; \
	done

# Each target for FUZZ_MINUTES, on the corpus it grew before and the
# seeds in the tree, with what libFuzzer says at the end (execs, corpus,
# any crash: a crash fails the target and leaves its input in build-fuzz/).
# FUZZ_RUNS=N stops a target after N executions instead (still bounded by
# FUZZ_MINUTES): the issue's "10 million per target" is make fuzz-long
# FUZZ_RUNS=10000000 FUZZ_MINUTES=60.
FUZZ_MINUTES ?= 10
FUZZ_RUNS ?=
fuzz-long: $(FUZZ_BINS)
	@for f in $(FUZZERS); do \
	    echo "== fuzz_$$f for $(FUZZ_MINUTES) min"; \
	    mkdir -p build-fuzz/corpus-$$f; \
	    build-fuzz/fuzz_$$f -max_total_time=$$(($(FUZZ_MINUTES) * 60)) \
	        -max_len=20000 -print_final_stats=1 \
	        $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)) \
	        -artifact_prefix=build-fuzz/crash-$$f- \
	        build-fuzz/corpus-$$f tests/fuzz/corpus/$$f \
	        >build-fuzz/fuzz_$$f.long.log 2>&1 || \
	        { tail -50 build-fuzz/fuzz_$$f.long.log; exit 1; }; \
	    grep -E '^stat::number_of_executed_units|^#[0-9]+ +DONE' \
	        build-fuzz/fuzz_$$f.long.log; \
	done

# Keep what the fuzzers found in the tree, minimised (tools/fuzz-merge.sh).
fuzz-merge: $(FUZZ_BINS)
	@sh tools/fuzz-merge.sh $(FUZZERS)

# ASan gateway and agents under a mixed load for SOAK_MINUTES (tests/soak.py).
SOAK_MINUTES ?= 30
soak: asan
	PORCH_BUILD=build-asan PORCH_ASAN=1 $(PYTHON) tests/soak.py \
	    --minutes $(SOAK_MINUTES)

deps:
	@sh tools/deps.sh

demo: deps all
	bash tools/demo.sh

bench: deps all $(BUILD)/tls_rate
	PORCH_BUILD=$(BUILD) $(PYTHON) bench/compare.py

# Not a test: asserts no figure, only that every setup ran (< 60 s).
bench-smoke: all $(BUILD)/tls_rate
	PORCH_BUILD=$(BUILD) $(PYTHON) bench/compare.py --quick --out -

# Revisions or build directories against each other, e.g. AB="HEAD~1 HEAD".
bench-ab: deps all $(BUILD)/tls_rate
	@test -n "$(AB)" || { echo 'usage: make bench-ab AB="REV|DIR ..."'; exit 2; }
	PORCH_BUILD=$(BUILD) $(PYTHON) bench/ab.py $(AB)

# Fairness and latency over a slow home uplink (network namespaces;
# root): bench/uplink.py -> bench/UPLINK.md.
bench-uplink: deps all
	PORCH_BUILD=$(BUILD) $(PYTHON) bench/uplink.py

# A TLS connection-rate client for bench/ (not installed).
$(BUILD)/tls_rate: bench/tls_rate.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS) -lpthread

# N agent tunnels from one process, for bench/storm.py (not installed).
$(BUILD)/many_agents: bench/many_agents.c $(TUN_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(INC_tunnel) -o $@ $^ $(LDLIBS)

# A hostile agent that writes raw frames, for the system tests.
$(BUILD)/rawagent: tests/tools/rawagent.c $(TUN_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(INC_tunnel) -o $@ $^ $(LDLIBS)

# Its mirror, a hostile gateway that agents pin, for the system tests.
$(BUILD)/rawgateway: tests/tools/rawgateway.c $(TUN_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(INC_tunnel) -o $@ $^ $(LDLIBS)

# One RFC 2136 update from the command line, for the system tests that
# check ddns/ against BIND and Knot.
$(BUILD)/ddnsc: tests/tools/ddnsc.c $(DDNS_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(INC_ddns) -o $@ $^ $(LDLIBS)

# The example configs go where the daemons' -h points.
EXAMPLES := $(wildcard config/examples/*.yaml)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin
	install -d $(DESTDIR)$(PREFIX)/share/doc/porch/examples
	install -m 644 $(EXAMPLES) $(DESTDIR)$(PREFIX)/share/doc/porch/examples

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find build build-asan -name '*.d' 2>/dev/null)
