# Sourced by the other scripts: finds (or installs) libtorch and exports what the build needs.
#
#   SANCE_TORCH_VENV  virtual environment holding the torch==2.11.0 wheel
#                     (default: ~/.cache/sance/torch-2.11.0, shared by every clone and CI run)
#   LIBTORCH          a libtorch 2.11.0 of your own; when set, no virtual environment is used
#
# The venv is created when missing and checked when present: a broken or wrong-version
# torch is reinstalled rather than trusted.

SANCE_TORCH_VERSION=2.11.0

# torch-sys compiles a C++ shim; the C harness needs a C compiler.
if ! command -v c++ >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    echo "sance: installing a C/C++ compiler (build-essential)" >&2
    apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
fi
SANCE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -n "${LIBTORCH:-}" ]; then
    unset LIBTORCH_USE_PYTORCH
    echo "sance: using LIBTORCH=$LIBTORCH" >&2
else
    SANCE_TORCH_VENV=${SANCE_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sance/torch-$SANCE_TORCH_VERSION}
    sance_torch_ok() {
        "$SANCE_TORCH_VENV/bin/python" -c \
            "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$SANCE_TORCH_VERSION' else 1)" \
            >/dev/null 2>&1
    }
    if ! sance_torch_ok; then
        echo "sance: installing torch==$SANCE_TORCH_VERSION into $SANCE_TORCH_VENV (4.6 GB, once per machine)" >&2
        mkdir -p "$(dirname "$SANCE_TORCH_VENV")"
        # A half-made venv from an interrupted install is rebuilt from scratch.
        rm -rf "$SANCE_TORCH_VENV"
        python3 -m venv "$SANCE_TORCH_VENV" || return 1 2>/dev/null || exit 1
        "$SANCE_TORCH_VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$SANCE_TORCH_VERSION" \
            || { echo "sance: pip install torch==$SANCE_TORCH_VERSION failed" >&2; return 1 2>/dev/null || exit 1; }
        sance_torch_ok || { echo "sance: torch in $SANCE_TORCH_VENV does not import" >&2; return 1 2>/dev/null || exit 1; }
    fi
    # The checkpoint interoperability test reads checkpoints with Python's safetensors.
    if ! "$SANCE_TORCH_VENV/bin/python" -c "import safetensors" >/dev/null 2>&1; then
        "$SANCE_TORCH_VENV/bin/pip" install --quiet --disable-pip-version-check "safetensors==0.8.0" \
            || { echo "sance: pip install safetensors failed" >&2; return 1 2>/dev/null || exit 1; }
    fi
    # tools/check_julia_syntax.py parses the Julia bindings with tree-sitter's Julia grammar.
    if ! "$SANCE_TORCH_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(0 if (m.version('tree-sitter'), m.version('tree-sitter-julia')) == ('0.26.1', '0.23.1') else 1)" >/dev/null 2>&1; then
        "$SANCE_TORCH_VENV/bin/pip" install --quiet --disable-pip-version-check "tree-sitter==0.26.1" "tree-sitter-julia==0.23.1" \
            || { echo "sance: pip install tree-sitter failed" >&2; return 1 2>/dev/null || exit 1; }
    fi
    export SANCE_PYTHON=$SANCE_TORCH_VENV/bin/python
    # torch-sys asks `python` (inside a venv) where libtorch lives.
    export VIRTUAL_ENV=$SANCE_TORCH_VENV
    export PATH=$SANCE_TORCH_VENV/bin:$PATH
    export LIBTORCH_USE_PYTORCH=1
fi
export SANCE_ROOT

# Links target/release/<SONAME> -> lib<name>.so for each built library (libsance.so.0.5 ->
# libsance.so), so that programs linked against the build tree (-Ltarget/release) find it at
# run time as they would an installed library. The SONAME itself is set at link time
# (build_support/header.rs); the link is made here, after a build, since a build script may
# write only into its OUT_DIR. Called by `make build`, scripts/test and the benchmarks.
sance_soname_links() {
    local dir=${1:-$SANCE_ROOT/target/release} lib soname
    for lib in libsance libsance_eval; do
        [ -f "$dir/$lib.so" ] || continue
        soname=$(readelf -d "$dir/$lib.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
        [ -n "$soname" ] && ln -sfn "$lib.so" "$dir/$soname"
    done
    return 0
}
