#!/usr/bin/env bash
# The GPU sprint (docs/gpu.md): install, `hyperbench reproduce -p gpu-sprint`, `hyperbench perf` on CUDA.
# Everything that matters ends up in at most 4 files under $OUT: env.txt, sprint.log, perf.txt, sprint.tgz.
set -uo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
# SPRINT_PROFILE / SPRINT_DEVICE / SPRINT_PERF_ARGS only for a dry run of this script on a CPU (docs/gpu.md).
export HYPERBENCH_DATA="${HYPERBENCH_DATA:-$PWD/gpu-data}" HYPERBENCH_QUIET=1
profile="${SPRINT_PROFILE:-gpu-sprint}" device="${SPRINT_DEVICE:-cuda}"
work="$(mktemp -d)"
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python -m pip install --quiet --no-build-isolation --no-deps -e . && echo "installed"
  python -c "import torch, bench; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  nproc
} > "$OUT/env.txt" 2>&1
start=$(date +%s)
python -m bench.apps.cli reproduce -p "$profile" --device "$device" --runs-dir "$work/runs" --results-dir "$work/results" --tables-dir "$work/tables" > "$OUT/sprint.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s (machine start not counted)" >> "$OUT/sprint.log"
start=$(date +%s)
python -m bench.apps.cli perf --device "$device" ${SPRINT_PERF_ARGS:---levels 4 --batch 16 --crop 96 --repeats 5 --workers 8} --runs-dir "$work/runs" > "$OUT/perf.txt" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s" >> "$OUT/perf.txt"
# results and tables of the sprint, and each run's config, log and summary (no weights, no cached inputs)
cd "$work" && tar czf "$OUT/sprint.tgz" --exclude="results/per_image/inputs" results tables \
  $(ls runs/*/config.json runs/*/log.jsonl runs/*/done 2>/dev/null)
