"""Face identity descriptors for re-identification: aligned crops through faceres on ONNX Runtime.

``FaceDescriber`` turns the faces of a frame into unit-length 1024-d descriptors whose cosine similarity is high
for two pictures of one person and low for two people (faceres, ``openfer.zoo.faceres``). The network file is an
optional model (``openfer models fetch faceres``, or a folder holding ``faceres.json``/``faceres.bin`` via
``model_dir`` / ``$OPENFER_MODEL_DIR``); it is built into an ONNX graph in memory when loaded, so no PyTorch and
no converted file are needed.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from openfer.align.similarity import crop_face
from openfer.types import Face

#: Where the 5 landmarks (eyes, nose, mouth corners) sit in an identity crop, as fractions of its side (x, y):
#: the median CenterFace landmarks on muxspace's LFW photos (1,121 faces; made left-right symmetric), the framing
#: faceres's descriptors were checked on in docs/models.md. A tight crop (eyes 47 % of the side apart): on 288 +
#: 287 LFW same/different pairs it gave ROC AUC 0.970 at 160 px, against 0.966 zoomed out by 0.8, 0.941 zoomed in
#: by 1.25 and 0.968 with the expression models' ``FER_TEMPLATE`` (``benchmarks/reid.py template``).
IDENTITY_TEMPLATE = np.array(
    [[0.2626, 0.4094], [0.7374, 0.4094], [0.5000, 0.6513], [0.3191, 0.8070], [0.6809, 0.8070]], np.float32
)
#: Crop side (pixels) faceres reads by default: 160 px gave LFW AUC 0.970 (112 px: 0.958) at about 4 ms a
#: descriptor on one core (112 px: about 2 ms); descriptors are made for a few frames per track only.
DEFAULT_SIZE = 160


class FaceDescriber:
    """Identity descriptors of faces: unit-length float32 [N, 1024].

    Args:
        session: an ONNX Runtime session of ``openfer.zoo.faceres.build_onnx`` (input ``faces`` [N, 3, S, S] RGB
            0..255, output ``descriptor``); ``load_describer`` makes one. Tests pass a fake.
        size: the crop side the session was built for.
        template: landmark positions of the crop (``IDENTITY_TEMPLATE``).

    ``seconds`` and ``count`` add up the time spent and the descriptors made (the cost the summary reports).
    """

    def __init__(self, session, size: int = DEFAULT_SIZE, template: np.ndarray = IDENTITY_TEMPLATE) -> None:
        self.session = session
        self.size = size
        self.template = template
        self.seconds = 0.0
        self.count = 0

    def crops(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Aligned identity crops of ``faces`` in ``image`` (RGB uint8 [H, W, 3], or grey [H, W]): uint8
        [N, S, S, 3]."""
        out = np.empty((len(faces), self.size, self.size, 3), np.uint8)
        for i, face in enumerate(faces):
            crop = crop_face(image, face, self.size, self.template)[0]
            out[i] = crop[..., None] if crop.ndim == 2 else crop[..., :3]
        return out

    def describe(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Unit-length descriptors of ``faces`` in ``image``: float32 [N, 1024] (N = 0 gives [0, 1024])."""
        t0 = time.perf_counter()
        if not faces:
            return np.zeros((0, 1024), np.float32)
        x = self.crops(image, faces).transpose(0, 3, 1, 2).astype(np.float32)
        d = self.session.run(None, {"faces": x})[0].astype(np.float32)
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        self.seconds += time.perf_counter() - t0
        self.count += len(faces)
        return d


def load_describer(model_dir: str | Path | None = None, size: int = DEFAULT_SIZE, threads: int = 1
                   ) -> FaceDescriber:
    """A ``FaceDescriber`` over the faceres files found by ``openfer.geometry.model_file.find_model`` (checked
    against their pinned SHA-256): ``model_dir`` (a folder or ``faceres.json`` itself), else
    ``$OPENFER_MODEL_DIR``, else the user cache where ``openfer models fetch faceres`` puts them.

    Args:
        threads: ONNX Runtime intra-op threads (descriptors are made for a few frames per track, so 1 leaves the
            other cores to detection and classification).

    Raises:
        openfer.geometry.ModelNotFoundError: the files are not there (the message says how to get them).
        openfer.UnreadableInputError: a file has another SHA-256 than the published one.
    """
    import onnxruntime as ort

    from openfer.geometry.model_file import FACERES, find_model
    from openfer.zoo.faceres import build_onnx

    path = find_model(FACERES, model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(build_onnx(path, size), options, providers=["CPUExecutionProvider"])
    return FaceDescriber(session, size)


@lru_cache(maxsize=2)
def shared_describer(model_dir: Path | None = None) -> FaceDescriber:
    """``load_describer(model_dir)`` made once per process (cluster workers analyse many videos)."""
    return load_describer(model_dir)
