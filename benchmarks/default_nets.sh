# Sourced by benchmarks/finetune_default_nets.sh and finetune_robust.sh: fine-tune default's networks and merge them.
# nets SUFFIX DIR: train the three networks of configs/from_onnx/default_v1_net*_mux_prior$SUFFIX.toml, merge them
# (the ensemble declares its members' mean prior), export and quantise into DIR/int8.onnx
DATA=${DATA:-../shared/data/fer2013_dev.npz}
DET=benchmarks/results/cache/detections-muxspace.npz  # CenterFace cache (benchmarks/crossdomain.py writes it)
nets() {
  for i in 0 1 2; do
    openfer train "configs/from_onnx/default_v1_net${i}_mux_prior$1.toml" "runs/default_v1_net${i}_mux_prior$1" \
      --data "$DATA"
  done
  mkdir -p "$2"
  openfer ensemble "$2/ensemble.pt" runs/default_v1_net{0,1,2}_mux_prior"$1" --data "$DATA"
  openfer export "$2/ensemble.pt" "$2/float.onnx"
  openfer quantize "$2/float.onnx" "$2/int8.onnx" --method minmax --data "$DATA"
}
