"""The speech-emotion classifier: utterance features (``openfer.audio.functionals``) -> 7 EmoDB classes.

An optional, clearly limited model: trained by ``openfer.audio.train_emotion`` on EmoDB, German speech acted by
10 speakers in a studio. Its model card (``openfer/models/speech_emotion_emodb.md``) gives the recipe and the
leave-one-speaker-out figures; expect much less on spontaneous speech, other languages and other microphones.
The network is a standardiser plus a small multilayer perceptron written as a plain ONNX graph (MatMul, Add, Relu,
Softmax) so it runs on ONNX Runtime with nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from openfer.audio.functionals import FEATURE_NAMES
from openfer.errors import UnreadableInputError

#: EmoDB's classes, in the model's output order.
EMOTION_CLASSES = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
#: Binary arousal of each class (Schuller et al., 2009, "Acoustic emotion recognition: a benchmark comparison of
#: performances"): high for anger, fear, happiness; low for boredom, disgust, neutral, sadness.
HIGH_AROUSAL = ("anger", "fear", "happiness")
MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "speech_emotion_emodb.onnx"


def build_onnx(mean: np.ndarray, scale: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]],
               classes: tuple[str, ...], metadata: dict[str, str]):
    """An ONNX model: ``softmax(relu(...relu(((x - mean) / scale) W1 + b1)...) Wn + bn)`` over ``x`` [N, F].

    Args:
        mean, scale: per-feature standardisation [F].
        layers: (W [in, out], b [out]) of each dense layer; ReLU between them, softmax after the last.
        classes: output names, stored in the metadata.
        metadata: more key/value pairs for the model's metadata (recipe, figures).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(mean, np.float32), "mean"),
             numpy_helper.from_array(np.asarray(scale, np.float32), "scale")]
    nodes = [helper.make_node("Sub", ["features", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["h0"])]
    h = "h0"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"W{i}"),
                  numpy_helper.from_array(np.asarray(b, np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"W{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"])]
        h = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [h], [f"a{i}"]))
            h = f"a{i}"
    nodes.append(helper.make_node("Softmax", [h], ["probabilities"], axis=1))
    graph = helper.make_graph(nodes, "speech_emotion", [helper.make_tensor_value_info(
        "features", TensorProto.FLOAT, ["N", len(mean)])], [helper.make_tensor_value_info(
            "probabilities", TensorProto.FLOAT, ["N", len(classes)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="openfer")
    model.ir_version = 8
    meta = {"classes": json.dumps(list(classes)), "features": json.dumps(list(FEATURE_NAMES)), **metadata}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


class SpeechEmotionModel:
    """Speech-emotion probabilities from ``utterance_features`` rows.

    Args:
        path: the ONNX file (default: the model openfer ships, trained on EmoDB).
        session: an ``onnxruntime.InferenceSession`` to use instead of opening ``path`` (tests inject one).

    Raises:
        UnreadableInputError: the file is missing or not an openfer speech-emotion model for these features.
    """

    def __init__(self, path: str | Path | None = None, session=None) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path is not None else MODEL_PATH
        if session is None:
            if not self.path.is_file():
                raise UnreadableInputError(f"{self.path}: no speech-emotion model file (train one with "
                                           "python -m openfer.audio.train_emotion)")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        try:
            self.classes = tuple(json.loads(meta["classes"]))
            features = tuple(json.loads(meta["features"]))
        except (KeyError, ValueError):
            raise UnreadableInputError(f"{self.path}: not an openfer speech-emotion model (no class/feature "
                                       "metadata)") from None
        if features != FEATURE_NAMES:
            raise UnreadableInputError(f"{self.path}: made for other features than this openfer computes; "
                                       "retrain it with python -m openfer.audio.train_emotion")
        self.metadata = dict(meta)
        self.session = session

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities [N, len(classes)] of feature rows [N, len(FEATURE_NAMES)]."""
        x = np.asarray(features, np.float32).reshape(-1, len(FEATURE_NAMES))
        if not len(x):
            return np.zeros((0, len(self.classes)), np.float32)
        return self.session.run(["probabilities"], {"features": x})[0]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (the model card records the shipped model's)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
