#!/usr/bin/env bash
# Copies the libtorch runtime that built libraries (libsance.so) need into DEST (make install uses
# <libdir>/sance), in the torch wheel's own layout: DEST/torch/lib/*.so and
# DEST/nvidia/<package>/lib/*.so*. torch's libraries find the NVIDIA ones through their own
# RPATH, $ORIGIN/../../nvidia/<package>/lib, which resolves inside DEST wherever DEST is moved;
# the installed libsance.so reaches torch/lib through RUNPATH $ORIGIN/sance/torch/lib.
#
#   packaging/bundle-libtorch.sh DEST LIB...   LIB: built libraries (target/release/libsance.so),
#                                              all linked against the same libtorch
#
# What is copied: the libraries the dynamic loader resolves for each LIB (its ldd closure) and, with
# their own closures, those that libtorch and the NVIDIA libraries load later with dlopen (read
# from the libraries' strings; none of them is visible to ldd, and without them CUDA fails on
# the first convolution, linear-algebra call or runtime-compiled kernel):
#   torch/lib/libtorch_cuda_linalg.so    CUDA linear algebra, loaded lazily by libtorch_cuda
#   torch/lib/libcaffe2_nvrtc.so         torch's lazily loaded NVRTC (-> libnvrtc)
#   nvidia/*/lib/libnvrtc*.so*           NVRTC and its builtins (cuBLASLt and cuDNN compile with it)
#   nvidia/cudnn/lib/*.so*               cuDNN's sub-libraries (libcudnn_graph, _ops, _cnn, ...)
#   nvidia/nvshmem/lib/*.so*             NVSHMEM's bootstrap and transport plugins
#   nvidia/*/lib/libcufile_rdma.so*      cuFile's RDMA plugin
# Not copied: libtorch_python, libshm and libtorch_global_deps (Python's), the CUDA driver
# (libcuda, libnvidia-ml: the node's own), static archives, headers, and the NVIDIA libraries
# nothing loads (cuFFTW, cusolverMg, NVBLAS, the profilers' nvperf, the .alt NVRTC builds).
# Prints the bundle's size. Needs the wheel's layout (LIB linked against <site-packages>/torch/lib,
# as scripts/env.sh sets it up); a standalone libtorch is installed with LIBTORCH=<dir> instead.
set -euo pipefail
dest=$1
shift
libs=("$@")

# The libtorch that a library was linked against: the RUNPATH entry holding libtorch_cpu.so.
torch_of() {
    local d runpath
    IFS=: read -r -a runpath <<<"$(readelf -d "$1" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p')"
    for d in "${runpath[@]}"; do
        [ -e "$d/libtorch_cpu.so" ] && (cd "$d" && pwd -P) && return
    done
    echo "bundle-libtorch: no libtorch on the RUNPATH of $1 (${runpath[*]:-none}); rebuild it (make build)" >&2
    return 1
}
src=$(torch_of "${libs[0]}")
for lib in "${libs[@]}"; do
    if [ "$(torch_of "$lib")" != "$src" ]; then
        echo "bundle-libtorch: $lib and ${libs[0]} were linked against different libtorch builds" >&2
        exit 1
    fi
done
root=$(cd "$src/../.." && pwd -P)
if [ "${src#"$root"/}" != torch/lib ] || [ ! -d "$root/nvidia" ]; then
    echo "bundle-libtorch: $src is not the torch wheel's torch/lib (next to nvidia/): install with" >&2
    echo "  make install LIBTORCH=<that libtorch's root>, which bundles nothing" >&2
    exit 1
fi

# Shared libraries a file needs, as resolved paths (LD_LIBRARY_PATH could point elsewhere).
closure() {
    env -u LD_LIBRARY_PATH ldd "$1" | sed -n 's/.* => \(\/[^ ]*\) (0x.*/\1/p'
}
for lib in "${libs[@]}"; do
    missing=$(env -u LD_LIBRARY_PATH ldd "$lib" | grep 'not found' || true)
    if [ -n "$missing" ]; then
        echo "bundle-libtorch: $lib does not resolve here:" >&2
        echo "$missing" >&2
        exit 1
    fi
done

shopt -s nullglob
extras=("$src/libtorch_cuda_linalg.so" "$src/libcaffe2_nvrtc.so"
    "$root"/nvidia/*/lib/libnvrtc*.so* "$root"/nvidia/cudnn/lib/*.so* "$root"/nvidia/nvshmem/lib/*.so*
    "$root"/nvidia/*/lib/libcufile_rdma.so*)
files=$(
    for lib in "${libs[@]}"; do closure "$lib"; done
    for f in "${extras[@]}"; do
        case $f in *.alt.so*) continue ;; esac
        [ -e "$f" ] || continue
        echo "$f"
        # A plugin's missing system dependency (libibverbs, libpmix, ...) is its own business:
        # it fails to load on nodes without them, as it does in the wheel.
        closure "$f" || true
    done
)
# Each path with its directory resolved (ldd writes torch/lib/../../nvidia/...) and its name
# kept (a link named by a SONAME is copied as a file of that name); system libraries left out.
files=$(while read -r f; do
    dir=$(readlink -f "$(dirname "$f")")
    case $dir/ in "$root"/*) echo "${dir#"$root"/}/$(basename "$f")" ;; esac
done <<<"$files" | sort -u)
n=0
bytes=0
while read -r rel; do
    install -d -m 755 "$dest/$(dirname "$rel")"
    install -m 755 "$root/$rel" "$dest/$rel"
    n=$((n + 1))
    bytes=$((bytes + $(stat -L -c %s "$root/$rel")))
done <<<"$files"
# Directories between DEST and the libraries: readable by every user of the prefix.
find "$dest" -type d -exec chmod 755 {} +
echo "bundled $n libraries from $root into $dest ($((bytes / 1000000)) MB)"
