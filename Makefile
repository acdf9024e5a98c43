# Makefile — builds and installs pg_tsworker (PGXS).
#
#   make            the shim, the worker host, the N-API addon, the runtime
#   make install    into PostgreSQL's own directories (pkglibdir, sharedir)
#
# Pieces:
#   pg_tsworker.so        C shim (shared_preload_libraries); never links libnode
#   pg_tsworker_host.so   worker entry point, embeds libnode 18 (deps/libnode)
#   pg_tsworker_addon.node N-API addon built by node-gyp (binding.gyp)
#   dist/                 TypeScript runtime compiled by tsc
#   pack/pg-tsworker.tgz  the npm package worker authors install for types
#   pack/pg_tsworker      the `pg_tsworker check` command (src/check)
# Installed: $(pkglibdir)/pg_tsworker{,_host}.so, $(pkglibdir)/pg_tsworker/
# (libnode.so.108, the addon, pg_tsworker_node), $(sharedir)/pg_tsworker/
# (runtime, the node_modules it needs, pg-tsworker.tgz) and
# $(bindir)/pg_tsworker, so the server never reads this checkout.

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
LIBNODE_PREFIX ?= $(CURDIR)/deps/libnode/usr
LIBNODE_SO = $(LIBNODE_PREFIX)/lib/x86_64-linux-gnu/libnode.so.108

# No LLVM bitcode: the host is C++ and PGXS has no .bc rule for it.
override with_llvm := no

MODULE_big = pg_tsworker
OBJS = native/shim/pg_tsworker.o native/shim/worker_list.o native/shim/worker_register.o native/shim/slots.o \
	native/shim/worker_slot.o native/shim/slot_control.o native/shim/slot_restart.o native/shim/sql_launch.o \
	native/shim/sql_control.o native/shim/sql_status.o native/shim/worker_settings.o native/shim/settings_check.o native/shim/settings_reload.o native/shim/module_file.o \
	native/shim/manifest.o native/shim/node_child.o native/shim/fence.o native/shim/cluster_boot.o \
	native/shim/cluster_ctl.o native/shim/wake.o
EXTENSION = pg_tsworker
DATA = sql/pg_tsworker--0.1.sql sql/pg_tsworker--0.1--0.2.sql sql/pg_tsworker--0.2.sql
PGFILEDESC = "pg_tsworker - PostgreSQL background workers in TypeScript"
SCRIPTS_built = pg_tsworker_ctl
EXTRA_CLEAN = pg_tsworker_host$(DLSUFFIX) pg_tsworker_node native/host/*.o dist build pack \
	native/shim/module_kinds.h native/.pg_config_stamp

# The extension's version, for the module's magic block (compat.h).
TSW_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" pg_tsworker.control)
PG_CPPFLAGS = -DTSW_VERSION='"$(TSW_VERSION)"'

# A call to an undeclared function would return a truncated int: refuse it.
PG_CFLAGS = -Werror=implicit-function-declaration -Werror=int-conversion \
	-Werror=incompatible-pointer-types
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

HOST_SO = pg_tsworker_host$(DLSUFFIX)
HOST_OBJS = native/host/host_pg.o native/host/host_pg_loop.o native/host/host_exit.o native/host/host.o \
	native/host/host_start.o native/host/host_guard.o
HOST_CXXFLAGS = -std=c++17 -fPIC -O2 -g -Wall -Wno-unused-parameter \
	-fvisibility=hidden -I$(LIBNODE_PREFIX)/include/node
ADDON = build/Release/pg_tsworker_addon.node
# make does not follow #include (PGXS's autodepend is off): every object
# depends on every header it could include, so a changed struct (TswSlot,
# copied between the shim and the host) never leaves a stale object behind
SHIM_HEADERS = $(wildcard native/shim/*.h)
HOST_HEADERS = $(wildcard native/host/*.h)
ADDON_SRCS = $(wildcard native/addon/*.c native/addon/*.cc native/addon/*.h) $(SHIM_HEADERS) binding.gyp
RUNTIME_SRCS = $(shell find src -name '*.ts' -o -name '*.json') tsconfig.json
NODE_BIN = node_modules/.bin

NODE_EXE = pg_tsworker_node
PACKAGE = pack/pg-tsworker.tgz
CHECK_CMD = pack/pg_tsworker

# Which PostgreSQL the objects were compiled against: switching PG_CONFIG
# (15 -> 17, say) rewrites this file, and everything compiled against the
# server's headers is rebuilt instead of loading a module built for another
# major version (the server would refuse it, or worse, not).
PG_STAMP = native/.pg_config_stamp
PG_STAMP_TEXT := $(shell $(PG_CONFIG) --version) $(shell $(PG_CONFIG) --includedir-server)
$(shell [ "$$(cat $(PG_STAMP) 2>/dev/null)" = "$(PG_STAMP_TEXT)" ] || echo "$(PG_STAMP_TEXT)" > $(PG_STAMP))
$(OBJS) $(HOST_OBJS) $(ADDON): $(PG_STAMP)
native/shim/pg_tsworker.o native/host/host_pg.o: pg_tsworker.control

all: $(HOST_SO) $(NODE_EXE) $(ADDON) dist/.built $(PACKAGE) $(CHECK_CMD) pg_tsworker_ctl

# the CLI (installed in PostgreSQL's bindir) runs the installed runtime with the installed node
pg_tsworker_ctl: scripts/pg_tsworker_ctl.in
	sed -e 's|@NATIVE@|$(pkglibdir)/pg_tsworker|' -e 's|@RUNTIME@|$(datadir)/pg_tsworker|' \
		-e 's|@BINDIR@|$(bindir)|' $< > $@
	chmod 755 $@

native/host/node_main.o: native/host/node_main.cc $(LIBNODE_SO)
	$(CXX) $(HOST_CXXFLAGS) -c -o $@ $<

$(NODE_EXE): native/host/node_main.o
	$(CXX) -o $@ $< $(LIBNODE_SO) -Wl,-rpath,'$$ORIGIN' -Wl,--as-needed

$(HOST_OBJS): $(HOST_HEADERS) $(SHIM_HEADERS)
$(OBJS): $(SHIM_HEADERS)
native/shim/worker_list.o: native/shim/module_kinds.h

# which files are modules: defined once, for the runtime and the shim
native/shim/module_kinds.h: src/runtime/module-kinds.json scripts/gen-module-kinds
	scripts/gen-module-kinds $< $@

native/host/host.o native/host/host_start.o native/host/host_guard.o: native/host/%.o: native/host/%.cc \
		native/host/host_node.h native/host/host_pg.h $(LIBNODE_SO)
	$(CXX) $(HOST_CXXFLAGS) -c -o $@ $<

$(LIBNODE_SO):
	@echo "libnode 18 is missing from $(LIBNODE_PREFIX): run scripts/setup" >&2; exit 1

$(HOST_SO): $(HOST_OBJS)
	$(CXX) -shared -o $@ $(HOST_OBJS) $(LIBNODE_SO) -luv \
		-Wl,-rpath,'$$ORIGIN/pg_tsworker' -Wl,--as-needed

# node-gyp compiles against libnode 18's own headers: the addon then cannot
# ask for an N-API level the embedded runtime lacks.
$(ADDON): $(ADDON_SRCS) $(LIBNODE_SO)
	PATH="$(dir $(PG_CONFIG)):$$PATH" $(NODE_BIN)/node-gyp rebuild --silent \
		--nodedir=$(LIBNODE_PREFIX) --loglevel=error

dist/.built: $(RUNTIME_SRCS)
	rm -rf dist
	$(NODE_BIN)/tsc -p tsconfig.json
	touch $@

$(PACKAGE): dist/.built package.json pg_tsworker.control scripts/pack-package
	scripts/pack-package $@

RUNTIME_DEST = $(DESTDIR)$(datadir)/pg_tsworker
NATIVE_DEST = $(DESTDIR)$(pkglibdir)/pg_tsworker

# `pg_tsworker check`: the CLI (dist/check/cli.js) run by the Node 18
# executable the workers' libnode gives, from the installed directories.
$(CHECK_CMD): Makefile
	@mkdir -p pack
	printf '#!/bin/sh\n# pg_tsworker: checks worker modules (pg_tsworker --help)\nexec "%s" "%s" "$$@"\n' \
		'$(pkglibdir)/pg_tsworker/$(NODE_EXE)' \
		'$(datadir)/pg_tsworker/dist/check/cli.js' > $@
	chmod 755 $@

install: install-tsworker

install-tsworker: all installdirs
	$(INSTALL_SHLIB) $(HOST_SO) '$(DESTDIR)$(pkglibdir)/$(HOST_SO)'
	$(MKDIR_P) '$(NATIVE_DEST)'
	install -C -m 644 $(LIBNODE_SO) '$(NATIVE_DEST)/libnode.so.108'
	install -C -m 755 $(ADDON) '$(NATIVE_DEST)/pg_tsworker_addon.node'
	install -C -m 755 $(NODE_EXE) '$(NATIVE_DEST)/$(NODE_EXE)'
	scripts/install-runtime '$(RUNTIME_DEST)'
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	install -C -m 755 $(CHECK_CMD) '$(DESTDIR)$(bindir)/pg_tsworker'

uninstall: uninstall-tsworker

uninstall-tsworker:
	rm -f '$(DESTDIR)$(pkglibdir)/$(HOST_SO)'
	rm -rf '$(NATIVE_DEST)' '$(RUNTIME_DEST)'
	rm -f '$(DESTDIR)$(bindir)/pg_tsworker'

# bench/spi: TypeScript worker vs a C worker vs an external pg client vs
# PL/pgSQL (the C worker is an extension of its own, built here).
bench-spi: install
	$(MAKE) -C bench/spi PG_CONFIG=$(PG_CONFIG) install
	bench/spi/run

print-installdirs:
	@echo "$(DESTDIR)$(pkglibdir) $(RUNTIME_DEST)"

.PHONY: install-tsworker uninstall-tsworker print-installdirs bench-spi
