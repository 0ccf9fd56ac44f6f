#!/usr/bin/env bash
# One training run on the lent GPU machine (device tool), from the repository root there:
#   run(command="bash scripts/gpu_train.sh configs/faceres/default_la_gpu.toml", carry=["gpu"], timeout_s=600)
# Needs gpu/ made here by scripts/gpu_pack.py (FER Training as WebP + the faceres files). The machine's python3
# has PyTorch, NumPy and OpenCV; openfer runs from src/ without installing. The run folder is $OUT/run, so what
# was trained comes back even if the command is stopped at its limit: best.pt (~13 MB), metrics, summary, log
# (last.pt is over the 16 MiB a returned file may have and stays there).
# Locally (CPU, a tiny check): OUT=/tmp/gpu_out EXTRA="--epochs 1 --device cpu" bash scripts/gpu_train.sh CONFIG
set -euo pipefail
config=${1:?give a training config}
out=${OUT:?set OUT (the device machine sets it)}
export PYTHONPATH=src PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi -L || true
python3 scripts/gpu_pack.py --unpack gpu/fer_train.npz /tmp/fer2013_train.npz
args=(train "$config" "$out/run" --data /tmp/fer2013_train.npz)
if [[ -n "${EXTRA:-}" ]]; then read -r -a more <<<"$EXTRA"; args+=("${more[@]}"); fi
python3 -m openfer "${args[@]}" 2>&1 | tee "$out/train.log"
