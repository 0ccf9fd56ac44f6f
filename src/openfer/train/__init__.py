"""Training workbench ([train] extra: needs PyTorch). Datasets, architectures, the loop and ONNX export."""
