#!/usr/bin/env bash
# Issue 14: fine-tune default's own networks with news photos, then judge them by default's rule (validation only).
# default-v1's first three networks (default-int8-v1's, before quantisation) start from the shipped ONNX file
# (openfer.train.onnx_init), train two gentle epochs on FER+ Training plus muxspace's train people drawn to FER+'s
# class shares, and are merged, quantised and given a last layer as `default` was. About 40 min of training and
# 30 min for the rest on the 2-core CPU. Results: benchmarks/results/finetune_default_nets.json, docs/models.md.
set -euo pipefail
DATA=${DATA:-../shared/data/fer2013_dev.npz}
DET=benchmarks/results/cache/detections-muxspace.npz  # CenterFace cache (benchmarks/crossdomain.py writes it)
D=runs/default_mux_nets
for i in 0 1 2; do
  openfer train configs/from_onnx/default_v1_net${i}_mux_prior.toml runs/default_v1_net${i}_mux_prior --data "$DATA"
done
mkdir -p $D
openfer ensemble $D/ensemble.pt runs/default_v1_net{0,1,2}_mux_prior --data "$DATA"
openfer export $D/ensemble.pt $D/float.onnx
openfer quantize $D/float.onnx $D/int8.onnx --method minmax --data "$DATA"
# default's last layer (photos at a quarter of their match_prior weight), and default-v2's (FER+ alone)
python scripts/rehead.py --base $D/int8.onnx --out $D/head.onnx --full $D/full.onnx \
  --photos ../shared/data/muxspace --photo-weight 0.25 --detections $DET
python scripts/rehead.py --base $D/int8.onnx --out $D/head_fer.onnx --full $D/full_fer.onnx
python scripts/fit_decision.py $D/full.onnx $D/int8.onnx --detections $DET --json $D/fd.json
python scripts/fit_decision.py $D/full_fer.onnx --detections $DET --json $D/fd_fer.json
# The same with the logit-adjusted objective (configs/from_onnx/*_la.toml), and both sets merged 3 : 1 with `large`'s
# faceres MobileNet (cut out of large.onnx). Ensembles declare their members' mean prior since 2026-12-07.
python scripts/extract_member.py src/openfer/models/large.onnx m1_ runs/faceres_member.onnx \
  --arch faceres_mobilenet --network-size 96 --prior-besides default-int8-v1
L=runs/default_mux_nets_la
for i in 0 1 2; do
  openfer train configs/from_onnx/default_v1_net${i}_mux_prior_la.toml runs/default_v1_net${i}_mux_prior_la --data "$DATA"
done
mkdir -p $L
openfer ensemble $L/ensemble.pt runs/default_v1_net{0,1,2}_mux_prior_la --data "$DATA"
openfer export $L/ensemble.pt $L/float.onnx
openfer quantize $L/float.onnx $L/int8.onnx --method minmax --data "$DATA"
openfer ensemble $D/ensemble_p.pt runs/default_v1_net{0,1,2}_mux_prior --data "$DATA"   # now declaring a prior
openfer export $D/ensemble_p.pt $D/float_p.onnx
openfer quantize $D/float_p.onnx $D/int8_p.onnx --method minmax --data "$DATA"
openfer ensemble $D/large.onnx $D/int8_p.onnx runs/faceres_member.onnx --half-weights --data "$DATA"
openfer ensemble $L/large.onnx $L/int8.onnx runs/faceres_member.onnx --half-weights --data "$DATA"
python scripts/rehead.py --base $L/int8.onnx --out $L/head.onnx --full $L/full.onnx \
  --photos ../shared/data/muxspace --photo-weight 0.25 --detections $DET
python scripts/fit_decision.py $D/large.onnx --detections $DET --json $D/fd_large.json
python scripts/fit_decision.py $L/int8.onnx $L/large.onnx $L/full.onnx --detections $DET --json $L/fd.json
