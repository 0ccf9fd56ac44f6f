"""ONNX Runtime sessions made one way for every stage."""

from __future__ import annotations

from pathlib import Path


def make_session(model: str | Path | bytes, threads: int = 0):
    """A CPU ``onnxruntime.InferenceSession`` for a model file or serialized model.

    Args:
        model: path of an ONNX file, or its bytes.
        threads: intra-op threads (0: ONNX Runtime's default, one per core).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    # Without this, idle threads of one session spin and steal the cores the next stage needs (74 -> 57 ms per
    # 640x480 image with detector + classifier, see docs/benchmarks.md).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
