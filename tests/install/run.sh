#!/usr/bin/env bash
# `make install` into a temporary prefix, which is then moved (mv) elsewhere, as a cluster
# deployment copies it; two consumers are built from outside the source tree against the moved
# prefix: C++ through CMake's find_package(sance) + sance::sance, C through pkg-config. Both run
# as an unprivileged user (nobody) with a clean environment, so nothing of the builder's (root's
# home, its libtorch, its variables) can help. Then the site routes (LIBTORCH=<dir>,
# LIBTORCH=none) and make uninstall. Prints "N passed, M failed".
#
# Like make, it follows LIBTORCH from the environment: unset (the usual case), the install
# bundles the wheel's libtorch (about 3.5 GB, under a temporary directory removed on exit);
# set, the install points at that libtorch and bundles nothing.
set -uo pipefail
umask 022
root=$(cd "$(dirname "$0")/../.." && pwd)
# World-traversable: the consumers run as nobody, who must reach the prefix and the binaries.
work=$(mktemp -d /tmp/sance-install.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
prefix=$work/built/prefix
moved=$work/deployed/elsewhere/sance
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
site=${LIBTORCH:-}
passed=0
failed=0
ok() {
    local what=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $what"
    else
        failed=$((failed + 1))
        echo "FAIL $what"
        sed 's/^/     /' "$work/out" | tail -n 20
    fi
}
runpath() { readelf -d "$1" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p'; }

# Before 1.0 a minor version may break the ABI, so the SONAME carries it (libsance.so.0.5).
soname_version=${version%%.*}
[ "$soname_version" = 0 ] && soname_version=${version%.*}
# The libtorch the built library was linked against (its RUNPATH), for the site routes below.
torch_lib=
IFS=: read -r -a dirs <<<"$(runpath "$root/target/release/libsance.so")"
for d in "${dirs[@]}"; do [ -e "$d/libtorch_cpu.so" ] && torch_lib=$d && break; done
# As another user when we can switch to one (root); otherwise as ourselves.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    as=nobody
    as_user() { setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups "$@"; }
else
    as=$(id -un)
    as_user() { "$@"; }
fi

ok "make install PREFIX=<tmp>" make -C "$root" install PREFIX="$prefix"
lib=$prefix/lib/libsance.so.$version
for f in lib/libsance.so "lib/libsance.so.$soname_version" "lib/libsance.so.$version" include/sance.h \
    include/sance/sance.hpp include/sance/mpi.hpp lib/pkgconfig/sance.pc lib/cmake/sance/sanceConfig.cmake \
    lib/cmake/sance/sanceConfigVersion.cmake lib/libsance_eval.so "lib/libsance_eval.so.$soname_version" \
    include/sance_eval.h include/sance_status.h include/sance/eval.hpp lib/pkgconfig/sance_eval.pc; do
    ok "installed $f" test -e "$prefix/$f"
done
ok "versioned SONAME libsance.so.$soname_version" bash -c "readelf -d '$lib' | grep -q 'SONAME.*\[libsance.so.$soname_version\]'"
if [ -z "$site" ]; then
    # shellcheck disable=SC2016 # $ORIGIN is the loader's, not the shell's
    ok 'RUNPATH is $ORIGIN/sance/torch/lib, nothing else' test "$(runpath "$lib")" = '$ORIGIN/sance/torch/lib'
    ok "no absolute path into /root or the builder's libtorch in the dynamic section" bash -c \
        "! readelf -d '$lib' | grep -E '/root|${torch_lib:-/nonexistent}'"
    ok "libtorch and CUDA bundled (libtorch_cuda, cuDNN's sub-libraries, NVRTC)" bash -c \
        "cd '$prefix/lib/sance' && ls torch/lib/libtorch_cuda.so torch/lib/libtorch_cpu.so torch/lib/libc10.so \
         nvidia/cudnn/lib/libcudnn_ops.so.* nvidia/*/lib/libnvrtc.so.* nvidia/*/lib/libcublasLt.so.*"
    echo "     bundle: $(du -sh "$prefix/lib/sance" | cut -f1) in lib/sance, prefix $(du -sh "$prefix" | cut -f1)"
else
    ok "RUNPATH is LIBTORCH/lib ($site/lib)" test "$(runpath "$lib")" = "$site/lib"
fi

# Deployed elsewhere: the prefix moves, the consumers see only the new place.
mkdir -p "$(dirname "$moved")" && chmod -R 755 "$work/deployed"
ok "mv the prefix elsewhere" mv "$prefix" "$moved"
lib=$moved/lib/libsance.so.$version
as_user env -i PATH=/usr/bin:/bin ldd "$lib" >"$work/ldd" 2>&1
ok "moved library resolves libtorch inside the moved prefix, as $as, no LD_LIBRARY_PATH" bash -c \
    "cat '$work/ldd'; ! grep -q 'not found' '$work/ldd' && grep -q libtorch_cpu '$work/ldd' &&
     { [ -n '$site' ] || ! grep -E 'lib(torch|c10|cu|nccl|nvshmem)' '$work/ldd' | grep -v '=> $moved/'; }"

cp -r "$root/tests/install/cmake-consumer" "$root/tests/install/pkgconfig-consumer" "$work/"
ok "CMake consumer configures" env -u LD_LIBRARY_PATH cmake -S "$work/cmake-consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$moved"
ok "CMake consumer builds" cmake --build "$work/cmake-build"
ok "CMake consumer runs as $as, clean environment, no LD_LIBRARY_PATH" \
    as_user env -i PATH=/usr/bin:/bin HOME=/nonexistent "$work/cmake-build/app"
ok "find_package refuses an incompatible version" bash -c \
    "sed 's/find_package(sance 0.5 REQUIRED)/find_package(sance 7.0 REQUIRED)/' '$work/cmake-consumer/CMakeLists.txt' > '$work/v.txt' && mkdir -p '$work/cmake-v' && cp '$work/v.txt' '$work/cmake-v/CMakeLists.txt' && cp '$work/cmake-consumer/main.cpp' '$work/cmake-v/' && ! cmake -S '$work/cmake-v' -B '$work/cmake-v/build' -DCMAKE_PREFIX_PATH='$moved'"
export PKG_CONFIG_PATH="$moved/lib/pkgconfig"
ok "pkg-config knows sance $version" bash -c "[ \"\$(pkg-config --modversion sance)\" = '$version' ]"
ok "pkg-config points into the moved prefix" bash -c "pkg-config --libs sance | grep -q -- '-L$moved/lib/pkgconfig/../../lib'"
ok "pkg-config consumer builds" bash -c "cc -std=c11 -Wall -Wextra -Werror '$work/pkgconfig-consumer/main.c' \$(pkg-config --cflags --libs sance) -o '$work/pc-app'"
ok "pkg-config consumer trains and samples as $as, env -i, LD_LIBRARY_PATH=<moved>/lib" \
    as_user env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$moved/lib" HOME=/nonexistent "$work/pc-app"
# libsance_eval: a trained force deployed without libtorch, through CMake and pkg-config.
cp -r "$root/tests/install/eval-consumer" "$work/" && cp "$root/tests/corpus/v3/trained-mlp.safetensors" "$work/force.safetensors"
chmod 644 "$work/force.safetensors"
ok "CMake sance::eval consumer configures and builds" bash -c \
    "cmake -S '$work/eval-consumer' -B '$work/eval-build' -DCMAKE_PREFIX_PATH='$moved' >/dev/null && cmake --build '$work/eval-build' >/dev/null"
ok "pkg-config sance_eval consumer builds" bash -c \
    "cc -std=c11 -Wall -Wextra -Werror '$work/eval-consumer/main.c' \$(pkg-config --cflags --libs sance_eval) -o '$work/eval-pc'"
ok "libsance_eval needs no libtorch, no libsance, no RUNPATH" bash -c \
    "! ldd '$moved/lib/libsance_eval.so.$version' | grep -Eq '(libtorch|libc10)[^ /]*\.so|libsance\.so|not found' && ! readelf -d '$moved/lib/libsance_eval.so.$version' | grep -Eq 'RUNPATH|RPATH'"
ok "CMake force consumer runs as $as, clean environment" \
    as_user env -i PATH=/usr/bin:/bin HOME=/nonexistent "$work/eval-build/force" "$work/force.safetensors"
ok "pkg-config force consumer runs as $as, clean environment" \
    as_user env -i PATH=/usr/bin:/bin HOME=/nonexistent "$work/eval-pc" "$work/force.safetensors"
ok "neither force consumer loads libtorch" bash -c \
    "! ldd '$work/eval-build/force' '$work/eval-pc' | grep -Eq '(libtorch|libc10)[^ /]*\.so|not found'"
ok "make uninstall (the moved prefix)" make -C "$root" uninstall PREFIX="$moved"
ok "uninstall removes every file, the bundle included" bash -c "[ -z \"\$(find '$moved' ! -type d)\" ] || { find '$moved' ! -type d | head; false; }"
rm -rf "$moved"

# The site routes: a libtorch of the site's (here the one the library was built against) or
# none at all. Nothing is bundled; the consumer above is relinked against each prefix.
if [ -n "$torch_lib" ]; then
    torch_root=$(dirname "$torch_lib")
    sp=$work/site
    ok "make install LIBTORCH=<libtorch root>" make -C "$root" install PREFIX="$sp" LIBTORCH="$torch_root"
    ok "LIBTORCH=<dir>: RUNPATH <dir>/lib, nothing bundled" bash -c \
        "[ \"\$(readelf -d '$sp/lib/libsance.so' | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')\" = '$torch_lib' ] && [ ! -e '$sp/lib/sance' ]"
    ok "LIBTORCH=<dir>: pkg-config consumer runs" bash -c \
        "cc -std=c11 '$work/pkgconfig-consumer/main.c' \$(PKG_CONFIG_PATH='$sp/lib/pkgconfig' pkg-config --cflags --libs sance) -o '$work/pc-site' && env -u LD_LIBRARY_PATH '$work/pc-site'"
    ok "make install LIBTORCH=none" make -C "$root" install PREFIX="$sp" LIBTORCH=none
    ok "LIBTORCH=none: no RUNPATH, nothing bundled" bash -c "! readelf -d '$sp/lib/libsance.so' | grep -Eq 'RUNPATH|RPATH' && [ ! -e '$sp/lib/sance' ]"
    ok "LIBTORCH=none: the consumer runs with libtorch on LD_LIBRARY_PATH" \
        env LD_LIBRARY_PATH="$torch_lib" "$work/pc-site"
    if readelf -d "$root/target/release/libsance.so" | grep -q 'NEEDED.*\[libtorch_cuda.so\]'; then
        ok "LIBTORCH=<a libtorch without libtorch_cuda.so> refused for this CUDA build" bash -c \
            "mkdir -p '$work/cpu-torch/lib' && echo 2.11.0+cpu > '$work/cpu-torch/build-version' && ! make -C '$root' install PREFIX='$work/refused' LIBTORCH='$work/cpu-torch' && [ ! -e '$work/refused/lib/libsance.so' ]"
    fi
    make -C "$root" uninstall PREFIX="$sp" >/dev/null 2>&1
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
