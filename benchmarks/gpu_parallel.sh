#!/usr/bin/env bash
# GPU check of the multi-device paths on ONE GPU (about 3-4 minutes on an H100):
#   single (baseline), dp (one GPU: the notice, then plain training), scratch on cuda:0,cuda:0
#   (two replicas on one GPU), ddp with NCCL at world size 1 via torchrun (plain and --sync-bn),
#   ddp whose only rank is SIGKILLed once under --max-restarts 1 with --auto-resume;
#   model parallelism on cuda:0,cuda:0 (the network in two parts on one GPU, plain and with 4
#   staggered micro-batches), and the pipeline with NCCL at world size 1 (one stage: the NCCL
#   collectives, the pipelining schedule and the gathering of the model on a GPU). A pipeline
#   of 2 stages needs 2 GPUs (NCCL refuses two processes on one GPU): it runs when there are 2.
# Each prints one RESULT line (examples/sec of the last epoch, test accuracy ~1.0, wall time)
# and one MEMORY line per process (host and GPU peak).
#
#   PYTHONPATH=src bash benchmarks/gpu_parallel.sh          # run dirs under $OUT or a temp dir
#
# Synthetic 28 px images (benchmarks/parallel_check.py): no data set needed. With Fashion-MNIST
# installed, the last check is the real thing: torchrun --nproc-per-node 1 -m convzoo train
# --strategy ddp (2 epochs of Fashion-MNIST).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-src}"
PY="${PYTHON:-python3}"
DIR="${OUT:-$(mktemp -d)}/parallel"
mkdir -p "$DIR"
CHECK=benchmarks/parallel_check.py
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc-per-node 1)
failed=0

run() {  # run LIMIT_S CMD...: one check, never longer than LIMIT_S, never stops the script
  local limit=$1
  shift
  echo "== $*"
  timeout -k 10 "$limit" "$@" 2>&1 | grep -v "^\s*$" | tail -n 15
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then echo "FAILED (exit $rc)"; failed=$((failed + 1)); fi
}

"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda, '|', \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO GPU')"

run 40 "$PY" $CHECK --strategy single --out "$DIR/single"
run 40 "$PY" $CHECK --strategy dp --out "$DIR/dp"
run 40 "$PY" $CHECK --strategy scratch --devices cuda:0,cuda:0 --out "$DIR/scratch"
run 50 "${TORCHRUN[@]}" $CHECK --strategy ddp --out "$DIR/ddp"
run 50 "${TORCHRUN[@]}" $CHECK --strategy ddp --sync-bn --out "$DIR/ddp-syncbn"
run 70 "${TORCHRUN[@]}" --max-restarts 1 $CHECK --strategy ddp --auto-resume --kill-at 150 \
  --out "$DIR/ddp-restart"
ls "$DIR/ddp-restart"
run 60 "$PY" $CHECK --strategy model --devices cuda:0,cuda:0 --out "$DIR/model"
run 60 "$PY" $CHECK --strategy model --devices cuda:0,cuda:0 --microbatches 4 --out "$DIR/model-mb4"
run 60 "${TORCHRUN[@]}" $CHECK --strategy pipeline --microbatches 4 --out "$DIR/pipeline-1"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then  # one stage per GPU
  PIPE=("$PY" -m torch.distributed.run --standalone --nproc-per-node 2)
  run 90 "${PIPE[@]}" $CHECK --strategy pipeline --microbatches 4 --out "$DIR/pipeline-2"
  run 90 "${PIPE[@]}" $CHECK --strategy pipeline --microbatches 4 --pipeline-schedule 1f1b \
    --out "$DIR/pipeline-2-1f1b"
  run 60 "$PY" $CHECK --strategy model --devices cuda:0,cuda:1 --microbatches 4 \
    --out "$DIR/model-2gpus"
else
  echo "== pipeline over 2 GPUs and model on cuda:0,cuda:1: SKIPPED ($GPUS GPU; needs 2)"
fi
if [ -d "${CONVZOO_SYSTEM_DATA:-/usr/share/datasets}/fashion-mnist" ]; then  # the real thing
  run 60 "${TORCHRUN[@]}" -m convzoo train --strategy ddp --epochs 2 --out "$DIR/ddp-fmnist"
  ls "$DIR/ddp-fmnist"
fi
echo "== $failed check(s) failed"
exit "$failed"
