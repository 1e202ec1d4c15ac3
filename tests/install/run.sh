#!/usr/bin/env bash
# `make install` into a temporary prefix, then two consumers built from outside the source
# tree: C++ through CMake's find_package(sance) + sance::sance, C through pkg-config. Neither
# sets LD_LIBRARY_PATH. Prints "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
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

# Before 1.0 a minor version may break the ABI, so the SONAME carries it (libsance.so.0.3).
soname_version=${version%%.*}
[ "$soname_version" = 0 ] && soname_version=${version%.*}

ok "make install PREFIX=<tmp>" make -C "$root" install PREFIX="$prefix"
for f in lib/libsance.so "lib/libsance.so.$soname_version" "lib/libsance.so.$version" include/sance.h \
    include/sance/sance.hpp include/sance/mpi.hpp lib/pkgconfig/sance.pc lib/cmake/sance/sanceConfig.cmake \
    lib/cmake/sance/sanceConfigVersion.cmake; do
    ok "installed $f" test -e "$prefix/$f"
done
ok "versioned SONAME libsance.so.$soname_version" bash -c "readelf -d '$prefix/lib/libsance.so.$version' | grep -q 'SONAME.*\[libsance.so.$soname_version\]'"
ok "installed library finds libtorch without LD_LIBRARY_PATH" bash -c \
    "out=\$(env -u LD_LIBRARY_PATH ldd '$prefix/lib/libsance.so'); ! grep -q 'not found' <<<\"\$out\" && grep -q libtorch_cpu <<<\"\$out\""

cp -r "$root/tests/install/cmake-consumer" "$root/tests/install/pkgconfig-consumer" "$work/"
ok "CMake consumer configures" env -u LD_LIBRARY_PATH cmake -S "$work/cmake-consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix"
ok "CMake consumer builds" cmake --build "$work/cmake-build"
ok "CMake consumer runs" env -u LD_LIBRARY_PATH "$work/cmake-build/app"
ok "find_package refuses an incompatible version" bash -c \
    "sed 's/find_package(sance 0.3 REQUIRED)/find_package(sance 7.0 REQUIRED)/' '$work/cmake-consumer/CMakeLists.txt' > '$work/v.txt' && mkdir -p '$work/cmake-v' && cp '$work/v.txt' '$work/cmake-v/CMakeLists.txt' && cp '$work/cmake-consumer/main.cpp' '$work/cmake-v/' && ! cmake -S '$work/cmake-v' -B '$work/cmake-v/build' -DCMAKE_PREFIX_PATH='$prefix'"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
ok "pkg-config knows sance $version" bash -c "[ \"\$(pkg-config --modversion sance)\" = '$version' ]"
ok "pkg-config consumer builds" bash -c "cc -std=c11 -Wall -Wextra -Werror '$work/pkgconfig-consumer/main.c' \$(pkg-config --cflags --libs sance) -o '$work/pc-app'"
ok "pkg-config consumer runs" env -u LD_LIBRARY_PATH "$work/pc-app"
ok "make uninstall" make -C "$root" uninstall PREFIX="$prefix"
ok "uninstall removes the library" test ! -e "$prefix/lib/libsance.so"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
