# Build and install libsance like any C library.
#
#   make                      build target/release/libsance.so (sets up libtorch on first use)
#   make install PREFIX=/opt/sance [DESTDIR=...]
#   make uninstall PREFIX=/opt/sance
#
# Installs lib/libsance.so.X.Y.Z with SONAME libsance.so.X — libsance.so.0.Y before 1.0, where
# a minor version may break the ABI (0.2 and 0.3 did) — and the SONAME / .so links,
# include/sance.h, include/sance/sance.hpp, include/sance/mpi.hpp, lib/pkgconfig/sance.pc and
# lib/cmake/sance/sanceConfig{,Version}.cmake (imported target sance::sance).
# The library carries its SONAME from the link (build.rs, same rule) and is copied as it is.
# The installed library keeps its rpath to libtorch: no LD_LIBRARY_PATH is needed.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
MINOR := $(word 2,$(subst ., ,$(VERSION)))
SONAME := libsance.so.$(if $(filter 0,$(MAJOR)),0.$(MINOR),$(MAJOR))
LIB := target/release/libsance.so

.PHONY: all build install uninstall test demo
all: build

build:
	bash -c 'source scripts/env.sh && cargo build --release --lib'

$(LIB):
	$(MAKE) build

install: $(LIB)
	@readelf -d $(LIB) | grep -q 'SONAME.*\[$(SONAME)\]' || \
	    { echo "$(LIB) lacks the SONAME $(SONAME): rebuild it (make build)"; exit 1; }
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/sance $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/sance
	install -m 755 $(LIB) $(DESTDIR)$(LIBDIR)/libsance.so.$(VERSION)
	ln -sf libsance.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsance.so
	install -m 644 include/sance.h $(DESTDIR)$(INCLUDEDIR)/sance.h
	install -m 644 bindings/cpp/include/sance/sance.hpp $(DESTDIR)$(INCLUDEDIR)/sance/sance.hpp
	install -m 644 bindings/cpp/include/sance/mpi.hpp $(DESTDIR)$(INCLUDEDIR)/sance/mpi.hpp
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' packaging/sance.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/sance.pc
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SONAME@|$(SONAME)|g' \
	    packaging/sanceConfig.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/sance/sanceConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' packaging/sanceConfigVersion.cmake.in \
	    > $(DESTDIR)$(LIBDIR)/cmake/sance/sanceConfigVersion.cmake

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libsance.so $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libsance.so.$(VERSION)
	rm -f $(DESTDIR)$(INCLUDEDIR)/sance.h $(DESTDIR)$(INCLUDEDIR)/sance/sance.hpp $(DESTDIR)$(INCLUDEDIR)/sance/mpi.hpp
	rm -f $(DESTDIR)$(LIBDIR)/pkgconfig/sance.pc
	rm -rf $(DESTDIR)$(LIBDIR)/cmake/sance
	-rmdir $(DESTDIR)$(INCLUDEDIR)/sance

test:
	./scripts/test

demo:
	./scripts/demo
