#!/usr/bin/env bash
# Benchmark 3 (YOLO) on an NVIDIA GPU: the bare ultralytics batched loop on CUDA, then the
# YoloDetector given the GPU (ray_actor_options.num_gpus=1) with dynamic batching on
# (max_batch_size=16, batch_wait_timeout_s=0.02) and off (max_batch_size=1), at concurrency
# 1, 8, 16 and 32; writes bench/results/yolo_gpu.json (and refreshes RESULTS.md and the plots).
#
#   bench/gpu_check.sh            # from the repository root, after `make install`
#   SECONDS_PER_POINT=3 bench/gpu_check.sh
# Bounded: a few seconds per point, about 3-4 minutes in all; loads 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none)" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c 'import torch, sys; ok = torch.cuda.is_available(); print("torch", torch.__version__, "cuda", torch.version.cuda, "available", ok); sys.exit(0 if ok else 3)'
timeout 900 "$PY" -m bench.yolo --device cuda --seconds "${SECONDS_PER_POINT:-5}"
"$PY" -m bench.report >/dev/null
"$PY" -m bench.plots
echo "gpu_check: wrote bench/results/yolo_gpu.json"
