#!/usr/bin/env bash
# Every open GPU check in one device call, for a session lent a GPU for 15 minutes in all
# (machine start included) and 10 minutes a call: the book's table first (issue 14's `book`
# profile), then the speed rows against the book's code (issue 15). With the device tool:
#   carry [".data"], command "bash benchmarks/gpu_session.sh", timeout_s 600
# after `mkdir -p .data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz
# .data/fashion-mnist/` (as gpu.sh says). Everything comes back under $OUT.
#
# Budget, seconds: the table 360 (16 cells, estimated 715 s of cells, 3 at once), the bench of
# resnet18@96 and alexnet@224 against the book's path 120, one speedrun seed 45: 525, plus
# start-up and summaries. Left for a later call: the book's own resnet18 run for 10 epochs
# (gpu_reproduce.sh steps 2-3), speedrun C and more seeds, the parallel checks (gpu.sh).
# DRY=1 runs the table's plumbing on a CPU (the smoke profile); gpu.sh's steps need CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${DRY:-0}" = 1 ]; then
  DRY=1 REF_S=0 bash benchmarks/gpu_reproduce.sh
  exit $?
fi
TABLE_S=${TABLE_S:-360} REF_S=0 bash benchmarks/gpu_reproduce.sh
table=$?
SEEDS=1 SPEED_A_S=45 SPEED_C_S=0 BENCH_S=120 PARALLEL_S=0 bash benchmarks/gpu.sh
speed=$?
echo "== gpu_session.sh: gpu_reproduce.sh exit $table, gpu.sh exit $speed, $SECONDS s in all"
exit $((table + speed))
