#!/usr/bin/env bash
# Validates sance on this machine, from the bundle scripts/gpu-bundle builds (docs/gpu.md).
# Needs `python3` with PyTorch 2.11.0 (its torch/lib is put on LD_LIBRARY_PATH), or
# LD_LIBRARY_PATH already holding a libtorch 2.11.0. Prints the GPU, driver and resolved
# device; runs cuda_check, the C harnesses on CUDA (SANCE_TEST_DEVICE=cuda) and the same
# binaries on the CPU (CUDA_VISIBLE_DEVICES=), and the speed benchmark (CUDA against PyTorch
# eager on the same GPU, and the CPU rows beside them). Without a GPU every CUDA part prints
# "skipped: no GPU" and counts neither as passed nor failed. Ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
# Everything within ten minutes: each part gets its own limit or what is left, if less.
deadline=$((start + ${SANCE_BUNDLE_SECONDS:-570}))
py=${PYTHON:-python3}
torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
if [ -n "$torch_lib" ]; then
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "libtorch: $torch_lib ($("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null))"
else
    echo "libtorch: from LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-} (no torch in $py)"
fi
passed=0
failed=0
skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

skip() {
    echo "skipped: $1: $2"
    skipped=$((skipped + 1))
}
# part NAME SECONDS CMD...: runs a program whose last line is "N passed, M failed" and adds
# its counts; a timeout, a crash or a missing tally is one failure. Its own "skipped:" lines
# are counted as skipped.
part() {
    local name=$1 limit=$2 rc=0 line p f s left
    shift 2
    echo "== $name"
    left=$((deadline - $(date +%s)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        echo "FAIL: $name: no time left in the ten minutes"
        failed=$((failed + 1))
        return
    fi
    timeout "$limit" "$@" >"$log" 2>&1 || rc=$?
    cat "$log"
    line=$(tail -n 1 "$log")
    p=$(echo "$line" | grep -Eo '^[0-9]+ passed' | grep -Eo '[0-9]+' || echo 0)
    f=$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+' || echo 1)
    s=$(grep -c '^skipped: ' "$log" || true)
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        if [ "$rc" -eq 124 ]; then echo "FAIL: $name timed out after ${limit}s"; else echo "FAIL: $name exited with status $rc"; fi
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
}

nvsmi=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    nvsmi=1
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
else
    echo "nvidia-smi is missing or lists no GPU"
fi
# cuda_check fails loudly when nvidia-smi sees a GPU that libtorch does not. What libtorch
# sees (cuda_check's first line) decides whether the CUDA parts run.
export SANCE_REQUIRE_GPU=$nvsmi
part cuda_check 150 ./cuda_check
gpus=$(grep -Eo 'libtorch sees [0-9]+ CUDA' "$log" | grep -Eo '[0-9]+' || echo 0)
gpu=0
[ "$gpus" -gt 0 ] && gpu=1

if [ "$gpu" -eq 1 ]; then
    SANCE_TEST_DEVICE=cuda part "test_sance on CUDA" 90 ./test_sance
    SANCE_TEST_DEVICE=cuda part "test_threads on CUDA" 60 ./test_threads
    SANCE_TEST_DEVICE=cuda part "test_quality on CUDA" 90 ./test_quality
else
    skip "test_sance on CUDA" "no GPU"
    skip "test_threads on CUDA" "no GPU"
    skip "test_quality on CUDA" "no GPU"
fi
# The CPU parts: SANCE_BUNDLE_CPU_PARTS lists which (default both; the test suite, which ran
# both harnesses on the CPU already, runs only test_threads here: proof enough that the
# bundle's binaries load its library and run).
for p in ${SANCE_BUNDLE_CPU_PARTS-test_sance test_threads}; do
    case $p in
    test_sance) CUDA_VISIBLE_DEVICES= SANCE_TEST_DEVICE=cpu part "test_sance on the CPU" 90 ./test_sance ;;
    test_threads) CUDA_VISIBLE_DEVICES= SANCE_TEST_DEVICE=cpu part "test_threads on the CPU" 60 ./test_threads ;;
    *) echo "FAIL: SANCE_BUNDLE_CPU_PARTS names $p (test_sance, test_threads)"; failed=$((failed + 1)) ;;
    esac
done

if [ "$gpu" -eq 1 ]; then
    echo "== speed: CUDA against PyTorch eager on the same GPU, and the CPU rows"
    rc=0
    left=$((deadline - $(date +%s)))
    SANCE_LIB="$PWD/libsance.so" timeout "$((left > 10 ? left : 10))" "$py" -W ignore bench/speed.py --device auto --rounds 3 --min-time 0.2 \
        --rows langevin-128-256,langevin-128-4096,langevin-1024-256,langevin-conv28-64,train-8gaussians,train-digits-conv \
        --json speed.json || rc=$?
    if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else echo "FAIL: the speed benchmark exited with status $rc"; failed=$((failed + 1)); fi
else
    skip "speed benchmark on CUDA" "no GPU"
fi
echo "$(( $(date +%s) - start )) s in all"
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
