# leaky-tokens: one top-level build (libbpf-bootstrap pattern).
#   .bpf.c -> build/bpf/*.bpf.o -> bpftool gen skeleton -> build/bpf/*.skel.h
#   user space: build/rel/ (release, -O2) and build/san/ (ASan+UBSan, for tests)
# `make help` lists the targets.

CLANG ?= clang
CC ?= gcc
BPFTOOL ?= bpftool
BUILD := build
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

# clang -target bpf does not search the multiarch dir that holds asm/types.h.
CLANG_SYS := $(shell $(CLANG) -v -E - </dev/null 2>&1 | \
	sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Wextra -Werror \
	-Iinclude -Ibpf $(CLANG_SYS)

# Include paths are per directory, so the compiler enforces the layering:
# lib/ (liblt) sees only include/ and lib/; agent/ and gateway/ see lib/, never
# each other; tests and bench see everything.
CFLAGS_COMMON := -std=gnu11 -g -Wall -Wextra -Werror -Wno-format-truncation -D_GNU_SOURCE
INC_lib := -Iinclude -Ilib
INC_agent := $(INC_lib) -Iagent -I$(BUILD)/bpf
INC_gateway := $(INC_lib) -Igateway
INC_stub := $(INC_lib) -Istub
INC_tests := $(INC_agent) -Igateway -Istub -Itests
INC_bench := $(INC_tests)
# $(call incs,path/to/file.c): the include flags of the file's top directory
incs = $(INC_$(firstword $(subst /, ,$(1))))
CFLAGS_REL := $(CFLAGS_COMMON) -O2
CFLAGS_SAN := $(CFLAGS_COMMON) -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all
LDLIBS := -Wl,--as-needed -lbpf -lelf -lz -ljansson -lssl -lcrypto -lsqlite3 -lmicrohttpd -lrdkafka -lpthread

BPF_PROGS := admit empty
SKELS := $(patsubst %,$(BUILD)/bpf/%.skel.h,$(BPF_PROGS))

LIB_SRCS := $(wildcard lib/*.c)
AGENT_SRCS := $(filter-out agent/main.c,$(wildcard agent/*.c))
# gateway/ (leaky-gateway) and stub/ (leaky-stub): everything but main.c goes
# in an archive, so unit tests and fuzz harnesses link the parts they test.
GW_SRCS := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
STUB_SRCS := $(filter-out stub/main.c,$(wildcard stub/*.c))
HDRS := $(wildcard include/*.h lib/*.h agent/*.h gateway/*.h stub/*.h bpf/*.h tests/*.h) $(SKELS)

# $(call objs,variant,sources)
objs = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

REL_AGENT := $(BUILD)/leaky-agent
SAN_AGENT := $(BUILD)/san/leaky-agent
REL_GW := $(BUILD)/leaky-gateway
SAN_GW := $(BUILD)/san/leaky-gateway
REL_STUB := $(BUILD)/leaky-stub
SAN_STUB := $(BUILD)/san/leaky-stub
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/san/tests/%,$(wildcard tests/unit/*.c))
BPF_TESTS := $(patsubst tests/bpf/%.c,$(BUILD)/san/tests/%,$(wildcard tests/bpf/*.c))
# Helper processes of the e2e suites (tests/e2e/*.c): liblt and libgateway, no agent code.
E2E_TOOLS := $(patsubst tests/e2e/%.c,$(BUILD)/san/tests/%,$(wildcard tests/e2e/*.c))
BENCH := $(BUILD)/bench
# the open-loop load generator of the gateway bench rows (scripts/bench_gw.sh)
LOADGEN := $(BUILD)/lt_loadgen
# the Kafka bench's mock cluster and record writer, release builds (the e2e ones run under ASan)
KAFKA_BENCH_TOOLS := $(BUILD)/rel/tests/lt_kafka_mock $(BUILD)/rel/tests/lt_reqlog_tool \
	$(BUILD)/rel/tests/lt_gload
RAWSEND := $(BUILD)/lt_rawsend
# Defined before `all:`: a rule's prerequisites are expanded when it is read.
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/bin/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all test run bench fuzz vmlinux clean help deps format format-check install uninstall screenshots
.DELETE_ON_ERROR:
.SECONDARY:

all: $(REL_AGENT) $(SAN_AGENT) $(REL_GW) $(SAN_GW) $(REL_STUB) $(SAN_STUB) $(UNIT_TESTS) $(BPF_TESTS) $(E2E_TOOLS) $(BENCH) $(LOADGEN) $(RAWSEND) \
	$(FUZZERS)

help:
	@echo "make            build everything (build/)"
	@echo "make deps       install the Debian and npm packages the build, tests, run and bench need"
	@echo "make test       install deps, build, run every tier (root): unit, bpf (BPF_PROG_RUN),"
	@echo "                netns (veth), e2e (the real agent and its REST API), fuzz smoke"
	@echo "make run        install deps, build, start leaky-agent (attached to lo), leaky-gateway"
	@echo "                (127.0.0.1:8080) and leaky-stub (127.0.0.1:9100) on the embedded configs"
	@echo "make bench      install deps, build, print benchmark figures and ratios"
	@echo "make fuzz       run each libFuzzer harness (tests/fuzz/) for FUZZ_SECONDS (60) each;"
	@echo "                new inputs in build/fuzz/corpus/, crashes in build/fuzz/crashes/"
	@echo "make screenshots  regenerate docs/screenshots/ (the dashboard, from its browser test)"
	@echo "make vmlinux    regenerate vmlinux/vmlinux.h from this kernel's BTF"
	@echo "make format     clang-format every source file in place"
	@echo "make format-check  fail if any source file is not clang-formatted"
	@echo "make install    install the binaries, systemd units, sysusers/tmpfiles entries and default"
	@echo "                configs (PREFIX=/usr/local, SYSCONFDIR=/etc, DESTDIR honoured)"
	@echo "make uninstall  remove what make install installed (edited configs are kept)"
	@echo "make clean      remove build/"

deps:
	@bash scripts/deps.sh

# The build of `make test` and `make bench` runs one job per core unless the
# command line says how many (make -jN test).
NPROC := $(shell nproc 2>/dev/null || echo 2)
JOBS_FLAG = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))

test: deps format-check
	@$(MAKE) --no-print-directory $(JOBS_FLAG) all
	@bash tests/run.sh

run: deps
	@$(MAKE) --no-print-directory $(REL_AGENT) $(REL_GW) $(REL_STUB)
	@RUN_ARGS="$(RUN_ARGS)" bash scripts/run.sh

bench: deps
	@$(MAKE) --no-print-directory $(JOBS_FLAG) $(BENCH) $(REL_AGENT) $(REL_GW) $(REL_STUB) $(LOADGEN) $(KAFKA_BENCH_TOOLS)
	@bash scripts/bench.sh

fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZERS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh long

# The README's pictures of the dashboard: the browser test (tests/e2e/test_ui.sh) writes a
# screenshot of each view; here into docs/screenshots/ instead of build/ui-screenshots/.
screenshots: deps
	@$(MAKE) --no-print-directory $(SAN_AGENT) $(SAN_GW) $(SAN_STUB) $(BUILD)/san/tests/lt_brk_peer
	@LT_UI_SHOTS=$(CURDIR)/docs/screenshots bash tests/e2e/test_ui.sh

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

FORMAT_SRCS = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null | grep -v '^vmlinux/')
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

clean:
	rm -rf $(BUILD)

# --- install (README "Install as a service") -----------------------------------
# Units, sysusers.d and tmpfiles.d go under $(PREFIX)/lib, which systemd searches for
# /usr/local as for /usr. A default config is never written over an existing one; uninstall
# removes a config only while it is still the shipped default (an edited one is the
# operator's and stays, said on stderr), never the state dir (/var/lib/leaky-tokens: the
# operator's data), and the directories it made only when they are empty.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR := $(PREFIX)/bin
UNITDIR := $(PREFIX)/lib/systemd/system
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d
TMPFILESDIR := $(PREFIX)/lib/tmpfiles.d
CONFDIR := $(SYSCONFDIR)/leaky-tokens
INSTALL_BINS := leaky-agent leaky-gateway leaky-stub
INSTALL_UNITS := leaky-agent.service leaky-gateway@.service
INSTALL_CONFS := agent.json:agent/default-config.json gateway.json:deploy/etc/gateway.json
D := $(DESTDIR)

install: $(REL_AGENT) $(REL_GW) $(REL_STUB)
	install -d $(D)$(BINDIR) $(D)$(UNITDIR) $(D)$(SYSUSERSDIR) $(D)$(TMPFILESDIR) $(D)$(CONFDIR)
	install -m 0755 $(addprefix $(BUILD)/,$(INSTALL_BINS)) $(D)$(BINDIR)/
	for u in $(INSTALL_UNITS); do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			deploy/systemd/$$u.in >$(D)$(UNITDIR)/$$u && chmod 0644 $(D)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 deploy/systemd/leaky-tokens.sysusers $(D)$(SYSUSERSDIR)/leaky-tokens.conf
	install -m 0644 deploy/systemd/leaky-tokens.tmpfiles $(D)$(TMPFILESDIR)/leaky-tokens.conf
	for c in $(INSTALL_CONFS); do \
		dst=$(D)$(CONFDIR)/$${c%%:*}; \
		if [ -e "$$dst" ]; then echo "install: keeping the existing $$dst" >&2; \
		else install -m 0644 $${c#*:} "$$dst" || exit 1; fi; \
	done
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		systemd-sysusers $(SYSUSERSDIR)/leaky-tokens.conf && \
		systemd-tmpfiles --create $(TMPFILESDIR)/leaky-tokens.conf && \
		systemctl daemon-reload; \
	fi

uninstall:
	rm -f $(addprefix $(D)$(BINDIR)/,$(INSTALL_BINS)) $(addprefix $(D)$(UNITDIR)/,$(INSTALL_UNITS)) \
		$(D)$(SYSUSERSDIR)/leaky-tokens.conf $(D)$(TMPFILESDIR)/leaky-tokens.conf
	for c in $(INSTALL_CONFS); do \
		dst=$(D)$(CONFDIR)/$${c%%:*}; \
		if [ -e "$$dst" ] && ! cmp -s "$$dst" $${c#*:}; then \
			echo "uninstall: keeping $$dst (edited)" >&2; else rm -f "$$dst"; fi; \
	done
	@# the directories install made, when nothing else is in them (systemd tolerates their absence)
	-@rmdir $(D)$(CONFDIR) $(D)$(UNITDIR) $(D)$(PREFIX)/lib/systemd $(D)$(SYSUSERSDIR) \
		$(D)$(TMPFILESDIR) 2>/dev/null; true
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# --- BPF ---------------------------------------------------------------------
$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard include/*.h bpf/*.bpf.h)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp.o
	$(BPFTOOL) gen object $@ $@.tmp.o
	@rm -f $@.tmp.o

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name lt_$* > $@

# --- user space --------------------------------------------------------------
$(BUILD)/rel/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) $(call incs,$<) -c $< -o $@

$(BUILD)/san/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) $(call incs,$<) -c $< -o $@

# liblt and the agent's objects as static archives: a binary links only the
# members it references, so a test links what it exercises and no more.
define lt_archives
$(BUILD)/$(1)/liblt.a: $(call objs,$(1),$(LIB_SRCS))
	@mkdir -p $$(@D); rm -f $$@
	ar rcs $$@ $$^

$(BUILD)/$(1)/libagent.a: $(call objs,$(1),$(AGENT_SRCS))
	@mkdir -p $$(@D); rm -f $$@
	ar rcs $$@ $$^

$(BUILD)/$(1)/libgateway.a: $(call objs,$(1),$(GW_SRCS))
	@mkdir -p $$(@D); rm -f $$@
	ar rcs $$@ $$^

$(BUILD)/$(1)/libstub.a: $(call objs,$(1),$(STUB_SRCS))
	@mkdir -p $$(@D); rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach v,rel san,$(eval $(call lt_archives,$(v))))

# The embedded default config is pulled in with .incbin.
$(BUILD)/rel/agent/config_default.o $(BUILD)/san/agent/config_default.o: agent/default-config.json

# The dashboard (agent/ui_assets.c) is pulled in with .incbin too: ui/ and uPlot, which
# scripts/deps.sh installs into ui/node_modules (npm ci, pinned by ui/package-lock.json).
UI_ASSETS := ui/index.html ui/app.js ui/app.css ui/node_modules/uplot/dist/uPlot.iife.min.js \
	ui/node_modules/uplot/dist/uPlot.min.css
$(BUILD)/rel/agent/ui_assets.o $(BUILD)/san/agent/ui_assets.o $(BUILD)/fuzz/agent/ui_assets.o: $(UI_ASSETS)
# One rule for both files (&:, a grouped target): as a pattern rule, make -j ran
# scripts/deps.sh once per missing file, at once, and the two npm ci in one directory
# failed (ENOTEMPTY) on a clone built with `make -j2 all` before `make deps`.
ui/node_modules/uplot/dist/uPlot.iife.min.js ui/node_modules/uplot/dist/uPlot.min.css &:
	@echo "ui/node_modules/uplot is missing: scripts/deps.sh installs it (npm ci in ui/)" >&2
	@bash scripts/deps.sh
	@test -e ui/node_modules/uplot/dist/uPlot.iife.min.js -a -e ui/node_modules/uplot/dist/uPlot.min.css

$(REL_AGENT): $(BUILD)/rel/agent/main.o $(BUILD)/rel/libagent.a $(BUILD)/rel/liblt.a
	$(CC) $(CFLAGS_REL) $^ -o $@ $(LDLIBS)

$(SAN_AGENT): $(BUILD)/san/agent/main.o $(BUILD)/san/libagent.a $(BUILD)/san/liblt.a
	$(CC) $(CFLAGS_SAN) $^ -o $@ $(LDLIBS)

$(REL_GW): $(BUILD)/rel/gateway/main.o $(BUILD)/rel/libgateway.a $(BUILD)/rel/liblt.a
	$(CC) $(CFLAGS_REL) $^ -o $@ $(LDLIBS)

$(SAN_GW): $(BUILD)/san/gateway/main.o $(BUILD)/san/libgateway.a $(BUILD)/san/liblt.a
	$(CC) $(CFLAGS_SAN) $^ -o $@ $(LDLIBS)

$(REL_STUB): $(BUILD)/rel/stub/main.o $(BUILD)/rel/libstub.a $(BUILD)/rel/liblt.a
	$(CC) $(CFLAGS_REL) $^ -o $@ $(LDLIBS)

$(SAN_STUB): $(BUILD)/san/stub/main.o $(BUILD)/san/libstub.a $(BUILD)/san/liblt.a
	$(CC) $(CFLAGS_SAN) $^ -o $@ $(LDLIBS)

$(BUILD)/san/tests/%: $(BUILD)/san/tests/unit/%.o $(BUILD)/san/libagent.a $(BUILD)/san/libgateway.a \
		$(BUILD)/san/libstub.a $(BUILD)/san/liblt.a
	$(CC) $(CFLAGS_SAN) $^ -o $@ $(LDLIBS)

$(BUILD)/san/tests/%: $(BUILD)/san/tests/bpf/%.o $(BUILD)/san/libagent.a $(BUILD)/san/libgateway.a \
		$(BUILD)/san/liblt.a
	$(CC) $(CFLAGS_SAN) $^ -o $@ $(LDLIBS)

$(BUILD)/san/tests/%: $(BUILD)/san/tests/e2e/%.o $(BUILD)/san/libgateway.a $(BUILD)/san/liblt.a
	$(CC) $(CFLAGS_SAN) $^ -o $@ $(LDLIBS)

$(BUILD)/rel/tests/%: $(BUILD)/rel/tests/e2e/%.o $(BUILD)/rel/liblt.a
	$(CC) $(CFLAGS_REL) $^ -o $@ $(LDLIBS)

$(BENCH): $(BUILD)/rel/bench/bench.o $(BUILD)/rel/libagent.a $(BUILD)/rel/liblt.a
	$(CC) $(CFLAGS_REL) $^ -o $@ $(LDLIBS)

$(LOADGEN): $(BUILD)/rel/bench/lt_loadgen.o
	$(CC) $(CFLAGS_REL) $^ -o $@

# the netns tests' frame sender: needs nothing but libc
$(RAWSEND): $(BUILD)/rel/tests/netns/lt_rawsend.o
	$(CC) $(CFLAGS_REL) $^ -o $@

# --- fuzzing: libFuzzer harnesses (tests/fuzz/fuzz_*.c), clang with ASan and UBSan -----
# Their own objects: the fuzzer runtime is clang's, and it does not mix with gcc's ASan.
# (gcc with -Werror is the build that lints; clang warns here without failing.)
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := $(filter-out -Wno-format-truncation -Werror,$(CFLAGS_COMMON)) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all -Wno-tautological-constant-compare

$(BUILD)/fuzz/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(call incs,$<) -c $< -o $@
$(eval $(call lt_archives,fuzz))
$(BUILD)/fuzz/agent/config_default.o: agent/default-config.json

$(BUILD)/fuzz/bin/%: $(BUILD)/fuzz/tests/fuzz/%.o $(BUILD)/fuzz/libagent.a $(BUILD)/fuzz/libgateway.a \
		$(BUILD)/fuzz/liblt.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(LDLIBS)
