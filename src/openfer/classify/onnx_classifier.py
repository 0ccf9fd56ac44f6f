"""Run an exported classifier with ONNX Runtime on face crops of any size, grey or RGB."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from openfer.classify.damage import DAMAGE, KINDS
from openfer.classify.mirror import one_pass
from openfer.classify.prior import ARGMAX, check_prior, model_decision, rebalance
from openfer.errors import UsageError
from openfer.runtime import make_session
from openfer.zoo.registry import ModelSpec, get_spec, model_path, spec_from_onnx


class Outputs(NamedTuple):
    """What one pass of a classifier gives for N crops: ``probabilities`` [N, K] (decision prior applied),
    ``damage`` [N, 4] over ``openfer.classify.damage.KINDS`` when the model has a damage probe (else None) and
    ``features`` [N, D] when asked for (else None)."""

    probabilities: np.ndarray
    damage: np.ndarray | None = None
    features: np.ndarray | None = None


class OnnxClassifier:
    """Expression classifier run by ONNX Runtime (an ``openfer.classify.Classifier``).

    Args:
        spec: the model's declared configuration.
        path: ONNX file (default: the shipped file of ``spec``, hash-checked).
        threads: ONNX Runtime intra-op threads (0: all cores).
        batch_size: crops per ``session.run``; bounds memory for huge N.
        session: an already-made ``onnxruntime.InferenceSession`` (tests inject fakes here).
        prior: ``"training"``: probabilities as calibrated on the training class balance (best accuracy on data
            as unbalanced as FER2013). ``"balanced"``: re-weighted as if every class were equally common
            (``openfer.classify.prior``; higher recall of rare expressions such as disgust, fear, contempt, lower
            accuracy on mostly neutral or happy faces).

    ``decision`` is how a label is chosen from the probabilities: under the training prior the argmax after the
    model's ``decision_tau`` adjustment (rare classes win close calls more often), under the balanced one the
    plain argmax.
    """

    def __init__(self, spec: ModelSpec, path: str | Path | None = None, threads: int = 0,
                 batch_size: int = 256, session=None, prior: str = "training") -> None:
        self.prior = check_prior(prior)
        if prior == "balanced" and len(spec.train_prior) != len(spec.classes):
            raise UsageError(f"model {spec.name!r} declares no training class prior, so it cannot be balanced; "
                             "use prior='training'")
        self.spec = spec
        self.decision = model_decision(spec) if prior == "training" else ARGMAX
        self.path = Path(path) if path else None  # None: the shipped file of ``spec`` (or an injected session)
        self.batch_size = batch_size
        self.threads = threads
        self._feature_session = None
        if session is None:  # the file, or its copy that runs each network once on face and mirror image
            session = make_session(one_pass(path or model_path(spec)), threads)
        self.session = session
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()] if hasattr(session, "get_outputs") else []

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of the probability columns, canonical order of this model."""
        return self.spec.classes

    @property
    def input_size(self) -> int:
        """Side of the square crop the network reads."""
        return self.spec.input_size

    @property
    def channels(self) -> int:
        """1 (the network reads grey crops) or 3 (RGB)."""
        return self.spec.channels

    @property
    def damage_kinds(self) -> tuple[str, ...]:
        """The kinds of damage (clean, eyes, mouth, detail) this model's damage probe tells apart, e.g. for
        ``default-soft`` (``openfer.classify.damage``); () for a model without one."""
        return KINDS if DAMAGE in self._outputs else ()

    def preprocess(self, faces: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W] or [N, H, W, 3] crops -> float32 [N, C, S, S] of raw 0..255 values."""
        return to_network_input(faces, self.spec.input_size, self.spec.channels)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities float32 [N, len(classes)], rows summing to 1, for uint8 crops of any size (N may be 0)."""
        return self.predict_outputs(faces).probabilities

    def predict_features(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities [N, K] (as ``predict_proba``) and the network's face features float32 [N, D] from one pass.

        The features are the pooled descriptor before the last linear layer (``openfer.classify.features``:
        mirror passes averaged, ensemble members concatenated); heads for new tasks (``openfer fit``) and
        adaptation (``openfer adapt``) are built on them.
        """
        out = self.predict_outputs(faces, features=True)
        return out.probabilities, out.features

    def predict_outputs(self, faces: np.ndarray, features: bool = False) -> Outputs:
        """Everything one pass gives for uint8 crops of any size (N may be 0): probabilities, the damage probe's
        kinds when the model has one (``damage_kinds``), and with ``features`` the face features."""
        session, names, feature_name = self.session, self._outputs, None
        if features:
            from openfer.classify.features import FEATURES as feature_name

            if self._feature_session is None:
                self._feature_session, self.feature_dim = self._make_feature_session()
            session = self._feature_session
            names = [o.name for o in session.get_outputs()]
        faces = np.asarray(faces)
        if faces.ndim >= 1 and len(faces) == 0:
            return Outputs(np.zeros((0, len(self.classes)), np.float32),
                           np.zeros((0, len(KINDS)), np.float32) if DAMAGE in names else None,
                           np.zeros((0, self.feature_dim), np.float32) if features else None)
        x = self.preprocess(faces)
        runs = [session.run(None, {self._input: x[i : i + self.batch_size]}) for i in range(0, len(x), self.batch_size)]
        p = np.concatenate([r[0] for r in runs]).astype(np.float32)  # the probabilities are always the first output

        def named(name: str) -> np.ndarray | None:
            return np.concatenate([r[names.index(name)] for r in runs]).astype(np.float32) if name in names else None

        return Outputs(self.apply_prior(p / p.sum(axis=1, keepdims=True)), named(DAMAGE),
                       None if feature_name is None else named(feature_name))

    def _make_feature_session(self):
        import onnx

        from openfer.classify.features import with_features

        if self.path is None and self.spec.file == "":
            raise ValueError("this classifier was given a session without a file: its features cannot be read")
        model, dim = with_features(onnx.load(str(one_pass(self.path or model_path(self.spec)))), len(self.classes))
        return make_session(model.SerializeToString(), self.threads), dim

    def apply_prior(self, probs: np.ndarray, prior: str | None = None) -> np.ndarray:
        """Probabilities [N, K] computed under the training prior, re-weighted to ``prior`` (default: this
        classifier's): unchanged for ``"training"``, ``rebalance`` with the model's declared prior and exponent
        for ``"balanced"``."""
        if check_prior(prior or self.prior) == "training":
            return probs
        return rebalance(probs, self.spec.train_prior, self.spec.balance_tau)

    def predict(self, faces: np.ndarray) -> list[str]:
        """The label of each crop (``decision``)."""
        return [self.classes[i] for i in self.decision.index(self.predict_proba(faces))]


def to_network_input(faces: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 [N, H, W] grey or [N, H, W, 3] RGB crops of any size -> float32 [N, channels, size, size] of raw
    0..255 values (converted to grey/RGB and resized as needed)."""
    faces = np.asarray(faces)
    if faces.dtype != np.uint8:
        raise TypeError(f"faces must be uint8, got {faces.dtype}")
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    if faces.ndim not in (3, 4) or (faces.ndim == 4 and faces.shape[-1] != 3):
        raise ValueError(f"faces must be [N, H, W] grey or [N, H, W, 3] RGB, got shape {faces.shape}")
    if faces.shape[1] == 0 or faces.shape[2] == 0:
        raise ValueError(f"face crops must be at least 1x1 pixels, got shape {faces.shape}")
    s, c = size, channels
    out = np.empty((len(faces), c, s, s), np.float32)
    for i, f in enumerate(faces):
        if c == 1 and f.ndim == 3:
            f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        elif c == 3 and f.ndim == 2:
            f = cv2.cvtColor(f, cv2.COLOR_GRAY2RGB)
        if f.shape[:2] != (s, s):
            interp = cv2.INTER_AREA if f.shape[0] > s or f.shape[1] > s else cv2.INTER_LINEAR
            f = cv2.resize(f, (s, s), interpolation=interp)
        out[i] = f.reshape(s, s, c).transpose(2, 0, 1)
    return out


def load_classifier(name: str = "default", *, path: str | Path | None = None, threads: int = 0,
                    prior: str = "training") -> OnnxClassifier:
    """Load a registered classifier by name (``openfer models`` lists them).

    Args:
        name: registry name, e.g. ``"default"``; or the path of an ``.onnx`` classifier written by openfer
            (``openfer export``, ``openfer fit``, ``openfer adapt``), which declares its classes in its metadata.
        path: use this ONNX file instead of the shipped one (same architecture/classes as ``name``; not
            hash-checked, so a retrained or fine-tuned export can be tried).
        threads: ONNX Runtime threads (0: all cores).
        prior: ``"training"`` or ``"balanced"`` decision prior (see ``OnnxClassifier``).

    Example:
        >>> import numpy as np, openfer
        >>> clf = openfer.load_classifier()
        >>> clf.predict_proba(np.zeros((2, 48, 48), np.uint8)).shape
        (2, 8)
    """
    if path is None and name.endswith(".onnx"):
        return OnnxClassifier(spec_from_onnx(name), path=name, threads=threads, prior=prior)
    return OnnxClassifier(get_spec(name), path=path, threads=threads, prior=prior)
