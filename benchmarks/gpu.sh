#!/usr/bin/env bash
# The GPU rows of benchmarks/RESULTS.md in one prepared run (about 6-8 minutes), for a session
# that holds a GPU machine (one CUDA GPU, torch/torchvision preinstalled, no internet).
#
# Before calling, carry Fashion-MNIST in an ignored folder of the checkout:
#   mkdir -p .data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/
# then run, e.g. with the device tool: carry [".data"], command "bash benchmarks/gpu.sh".
# Results are printed and, when $OUT is set, written there as JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
export CONVZOO_SYSTEM_DATA="$PWD/.data" CONVZOO_DATA=/tmp/convzoo-data CONVZOO_OFFLINE=1
export CONVZOO_FMNIST_SOURCE="$PWD/.data/fashion-mnist"
OUT=${OUT:-/tmp/convzoo-gpu}
mkdir -p "$OUT"

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', \
torchvision.__version__, torch.cuda.get_device_name())"

echo "== 1. speed against the book's path (resnet18@96, alexnet@224), examples/sec"
timeout 300 python benchmarks/bench_train.py --device cuda --models resnet18,alexnet \
    --batches 40 --json "$OUT/bench_gpu.json"

echo "== 2. share of the bf16 peak reached by resnet18@96 (H100 SXM dense bf16: 989 TFLOP/s)"
python - "$OUT/bench_gpu.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
for r in rows:
    g = r["auto"]["gflops_per_sec"]
    print(f"{r['case']['model']}: {g / 1e3:.1f} TFLOP/s achieved = {g / 989e3:.1%} of 989 TFLOP/s")
PY

echo "== 3. time to 94% test accuracy, end to end, 3 seeds"
timeout 180 python benchmarks/speedrun.py --device cuda --seeds 3 --thresholds 0.93,0.94 \
    --json "$OUT/speedrun_gpu.json" --epochs 12 -o width=64 --batch-size 512 --lr 0.4

echo "== 4. multi-device strategies on one GPU"
if [ -f benchmarks/gpu_parallel.sh ]; then timeout 200 bash benchmarks/gpu_parallel.sh; fi
