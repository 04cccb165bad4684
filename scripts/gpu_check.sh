#!/usr/bin/env bash
# Check fgrad on a GPU machine (no network there): install pycuda from the wheels carried in
# .gpu/, run the tests marked `cuda`, then benchmarks/gpu.py; full logs in $LOG_DIR, one table last.
#
# On the development machine (has ../shared/wheels, no GPU), first:
#     bash scripts/gpu_check.sh --prepare     # copies the wheels (and MNIST, if present) into .gpu/
# then carry .gpu/ to the GPU machine and, from the project root there:
#     bash scripts/gpu_check.sh               # at most GPU_CHECK_BUDGET (540) seconds
# (with the device tool: command "bash scripts/gpu_check.sh", carry [".gpu"], timeout_s 600).
#
# The recipe is ../shared/gpu/README.md's. Each stage has its own timeout inside one overall
# budget (GPU_CHECK_BUDGET seconds, default 540: under a 10-minute command limit), so one
# failure never loses the rest; the exit status is 0 when the table was printed.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
# logs: $LOG_DIR, else $OUT/gpu-logs (the device tool brings $OUT back), else .gpu/logs (ignored)
LOG_DIR=${LOG_DIR:-${OUT:+$OUT/gpu-logs}}
LOG_DIR=${LOG_DIR:-$ROOT/.gpu/logs}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-540}
left() { echo $(( BUDGET - SECONDS )); }

prepare() {
    mkdir -p .gpu && cp ../shared/wheels/*.whl .gpu/ || return 1
    local exclude
    exclude=$(git rev-parse --git-path info/exclude 2>/dev/null) && mkdir -p "$(dirname "$exclude")" \
        && { grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"; }
    if [ -d ../shared/data/mnist ]; then
        mkdir -p .gpu/data && cp -r ../shared/data/mnist .gpu/data/
    fi
    echo "prepared .gpu/: $(ls .gpu | tr '\n' ' ')"
}

if [ "${1:-}" = "--prepare" ]; then
    prepare
    exit $?
fi

mkdir -p "$LOG_DIR"
if ! ls .gpu/*.whl >/dev/null 2>&1; then
    if [ -d ../shared/wheels ]; then
        prepare >"$LOG_DIR/prepare.log" 2>&1
    else
        echo "no wheels in .gpu/: run 'bash scripts/gpu_check.sh --prepare' on the development machine" \
             "and carry .gpu/ here" | tee "$LOG_DIR/prepare.log"
    fi
fi

# 1. pycuda, exactly as ../shared/gpu/README.md says
{
    nvidia-smi 2>&1 | head -15
    timeout 120 "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl
    echo "pip exit $?"
} >"$LOG_DIR/install.log" 2>&1
export PYTHONPATH=/tmp/site:$ROOT
if [ -d .gpu/data/mnist ] && [ -z "${FGRAD_DATA_DIR:-}" ]; then
    export FGRAD_DATA_DIR=$ROOT/.gpu/data
fi
export FGRAD_CACHE_DIR=${FGRAD_CACHE_DIR:-/tmp/fgrad-gpu-cache}
timeout 60 "$PY" -c "
import pycuda.driver as drv; drv.init()
print('pycuda', __import__('pycuda').VERSION_TEXT, 'GPUs', drv.Device.count(), drv.Device(0).name())
from fgrad.backends import cuda
print('nvrtc:', cuda.find_nvrtc() and cuda.find_nvrtc().path, '| CUDA graphs (libcuda driver API):',
      'yes' if cuda.graph_api() else 'no')
" >>"$LOG_DIR/install.log" 2>&1
INSTALL=$(tail -3 "$LOG_DIR/install.log" | tr '\n' ' ' | cut -c1-200)

# 2. the tests marked cuda
TEST_LIMIT=$(( $(left) - 200 )); [ "$TEST_LIMIT" -gt 150 ] && TEST_LIMIT=150
[ "$TEST_LIMIT" -lt 30 ] && TEST_LIMIT=30
timeout "$TEST_LIMIT" "$PY" -m pytest tests/backends -m cuda -q -p no:randomly -p no:cacheprovider \
    >"$LOG_DIR/cuda-tests.log" 2>&1
TESTS="cuda tests: $(grep -E '(passed|failed|error|skipped|no tests ran)' "$LOG_DIR/cuda-tests.log" | tail -1)"
[ -n "${TESTS#cuda tests: }" ] || TESTS="cuda tests: no summary (timed out?), see cuda-tests.log"

# 3. the benchmarks; the table comes last (the MNIST step with CUDA graphs and with
#    FGRAD_CUDA_GRAPHS=0, both rows)
BENCH=$(( $(left) - 15 ))
timeout $(( BENCH + 10 )) "$PY" benchmarks/gpu.py --log-dir "$LOG_DIR" --timeout "${PART_TIMEOUT:-70}" --budget "$BENCH" \
    --note "$TESTS" --note "install: $INSTALL" --note "logs: $LOG_DIR" >"$LOG_DIR/gpu-bench.log" 2>&1
STATUS=$?
echo "--- stages: install.log, cuda-tests.log, gpu-bench.log (+ one log per benchmark part) in $LOG_DIR"
if grep -q '^fgrad on the GPU' "$LOG_DIR/gpu-bench.log"; then
    sed -n '/^fgrad on the GPU/,$p' "$LOG_DIR/gpu-bench.log"
    exit 0
fi
echo "benchmarks/gpu.py printed no table (exit $STATUS):"
tail -20 "$LOG_DIR/gpu-bench.log"
echo "$TESTS"
exit 1
