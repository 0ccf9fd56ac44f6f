#!/usr/bin/env bash
# Issue 14: all five networks of default-v1 at default's cost? default's recipe (configs/from_onnx/*_robust2.toml)
# on each of default-v1's five networks (0-2 are default's own; 3 and 4 are new), merged, quantised (int8) and run
# without mirror passes (scripts/drop_mirror.py): five passes per face where default runs six. Controls: default's
# three networks without mirror passes, and the five with them. Each gets default's last layer (photos at a quarter
# of their match_prior weight) and is judged by scripts/fit_decision.py against default; the rule is in
# docs/models.md ("Five networks without mirror passes"). About 10 min of training (networks 3 and 4) and 25 min
# for the rest on the 2-core CPU.
set -euo pipefail
source "$(dirname "$0")/default_nets.sh"
D=runs/default_mux_nets_five
for i in 3 4; do
  [ -f "runs/default_v1_net${i}_mux_prior_robust2/best.pt" ] || openfer train \
    "configs/from_onnx/default_v1_net${i}_mux_prior_robust2.toml" "runs/default_v1_net${i}_mux_prior_robust2" --data "$DATA"
done
mkdir -p "$D" "$D/three_nm" "$D/five_nm" "$D/five"
openfer ensemble "$D/ensemble.pt" runs/default_v1_net{0,1,2,3,4}_mux_prior_robust2 --data "$DATA"
openfer export "$D/ensemble.pt" "$D/float.onnx"
openfer quantize "$D/float.onnx" "$D/int8.onnx" --method minmax --data "$DATA"
python scripts/drop_mirror.py "$D/int8.onnx" "$D/five_nm/int8.onnx"
python scripts/drop_mirror.py runs/default_mux_nets_robust2/int8.onnx "$D/three_nm/int8.onnx"
cp "$D/int8.onnx" "$D/five/int8.onnx"
for C in five_nm three_nm five; do
  python scripts/rehead.py --base "$D/$C/int8.onnx" --out "$D/$C/head.onnx" --full "$D/$C/full.onnx" \
    --photos ../shared/data/muxspace --photo-weight 0.25 --detections "$DET"
done
python scripts/fit_decision.py default "$D/five_nm/full.onnx" "$D/three_nm/full.onnx" "$D/five/full.onnx" \
  --detections "$DET" --json "$D/fd.json"
