#!/usr/bin/env bash
# The GPU check, in one command, for a machine with a GPU and PyTorch but no network (the device
# machines some development sessions are lent): the CUDA tests (tests/test_cuda.py: CUDA equals the
# CPU, hashing, a training run reloaded on the CPU; tests/test_devices.py) and the CUDA training
# throughput of DEA and AutoInt on the Criteo shape at two batch sizes, with row-sparse tables and
# SparseAdam (the trainer's default, which syncs once per step to coalesce) and with dense tables and
# fused Adam (``*_dense``): which is faster on a GPU decides CUDA's default. About 5 minutes on an H100.
# With two GPUs or more, also data-parallel training on all of them (NCCL, ``--nproc`` = the GPUs):
# distributed.log, train_scaling_cuda.json.
#
# The machine lacks our small pure-Python dependencies; bring them as wheels, here, first:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       mmh3==5.3.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#       typing-extensions==4.16.0
# (.whl/ is git-ignored; carry it), then run `bash benchmarks/device_check.sh`: what it writes goes
# to $OUT (default /tmp/device-check): gpu.txt, tests.log, throughput.log, throughput_b8192.json,
# throughput_b32768.json. It exits non-zero when torch sees no GPU, a test fails or a throughput run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())" || { echo "torch sees no GPU" >&2; exit 1; }

# -c /dev/null: not pyproject's pytest settings (its warning filters name this machine's own pandas classes)
python3 -m pytest -c /dev/null --rootdir . -p no:cacheprovider -q -ra tests/test_cuda.py tests/test_devices.py 2>&1 \
    | tee "$OUT/tests.log"
status=${PIPESTATUS[0]}

# uniform IDs: ../shared/data does not travel to the device machine
for batch in 8192 32768; do
    timeout 150 python3 benchmarks/train_throughput.py --devices cuda --ids uniform --rows 65536 \
        --models dea,dea_dense,dea_symmetric,autoint,autoint_dense,autoint_default --cuda-batch-size "$batch" \
        --steps 10 --warmup 3 \
        --out "$OUT/throughput_b$batch.json" 2>&1 | tee -a "$OUT/throughput.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
# data-parallel training on every GPU (NCCL), only where there are at least two: the multi-GPU test
# (tests/test_distributed.py: N ranks train the one-process model, reloaded on the CPU) and the
# scaling benchmark (1 process against --nproc = the number of GPUs, where dask is there to build its lake)
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then
    python3 -m pytest -c /dev/null --rootdir . -p no:cacheprovider -q -ra tests/test_distributed.py \
        -k nccl 2>&1 | tee "$OUT/distributed.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    if python3 -c "import dask, distributed" 2>/dev/null; then
        timeout 300 python3 benchmarks/train_scaling.py --device cuda --nproc "1,$gpus" --rows 200000 \
            --batch-size 32768 --out "$OUT/train_scaling_cuda.json" 2>&1 | tee -a "$OUT/distributed.log"
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    else
        echo "train_scaling skipped: no dask here to build its synthetic lake" | tee -a "$OUT/distributed.log"
    fi
else
    echo "data-parallel check skipped: $gpus GPU(s), it needs at least 2" | tee "$OUT/distributed.log"
fi
exit "$status"
