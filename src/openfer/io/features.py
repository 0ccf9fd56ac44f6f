"""A table of face features: one row per face (keys as in the usual rows), probabilities and a feature vector.

Written by ``openfer embed`` as NPZ (NumPy only) or Parquet (pandas, ``[video]`` extra), read back by
``openfer fit`` / ``openfer adapt`` so faces are detected and embedded once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openfer.errors import UnreadableInputError, UsageError
from openfer.types import Face

#: Suffixes ``FeatureTable.save`` / ``load_features`` understand.
FEATURE_FORMATS = (".npz", ".parquet")


@dataclass
class FeatureTable:
    """Faces and their features, struct of arrays (N faces, K classes, D features).

    Attributes:
        path: source file of each face [N] (image or video).
        frame: 1-based video frame [N]; 0 for a photo.
        timestamp: seconds into the video [N]; NaN for a photo.
        face_id: track id in a video, index of the face in its photo (largest detection score first) [N].
        box: float32 [N, 4] x1, y1, x2, y2 pixels; confidence: float32 [N] detection score.
        probabilities: float32 [N, K] of ``classes``; features: float32 [N, D].
        classes: the model's class names; model: the model that made the features (name or file).
    """

    path: list[str]
    frame: np.ndarray
    timestamp: np.ndarray
    face_id: np.ndarray
    box: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    features: np.ndarray
    classes: tuple[str, ...]
    model: str
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.path)
        for name in ("frame", "timestamp", "face_id", "box", "confidence", "probabilities", "features"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FeatureTable.{name} has {len(getattr(self, name))} rows, path has {n}")
        if self.probabilities.ndim != 2 or self.probabilities.shape[1] != len(self.classes):
            raise ValueError(f"probabilities must be [N, {len(self.classes)}], got {self.probabilities.shape}")

    def __len__(self) -> int:
        return len(self.path)

    @property
    def expression(self) -> list[str]:
        """Label of each face: the argmax after its model's decision rule (``openfer.classify.prior``), as
        ``openfer analyze`` labels faces."""
        from openfer.classify.prior import ARGMAX, model_decision
        from openfer.zoo.registry import MODELS

        decision = model_decision(MODELS[self.model]) if self.model in MODELS else ARGMAX
        return [self.classes[i] for i in decision.index(self.probabilities)] if len(self) else []

    def take(self, idx: np.ndarray) -> "FeatureTable":
        """The rows at ``idx`` (indices or a boolean mask), as a new table."""
        idx = np.flatnonzero(idx) if np.asarray(idx).dtype == bool else np.asarray(idx, np.int64)
        return FeatureTable([self.path[i] for i in idx], self.frame[idx], self.timestamp[idx], self.face_id[idx],
                            self.box[idx], self.confidence[idx], self.probabilities[idx], self.features[idx],
                            self.classes, self.model, dict(self.extra))

    @classmethod
    def from_faces(cls, rows: list[tuple[str, int, float, int, Face]], classes: tuple[str, ...], model: str,
                   dim: int) -> "FeatureTable":
        """A table from (path, frame, timestamp, face_id, face with ``embedding``) tuples."""
        faces = [r[4] for r in rows]
        return cls(
            path=[r[0] for r in rows],
            frame=np.array([r[1] for r in rows], np.int64),
            timestamp=np.array([r[2] for r in rows], np.float64),
            face_id=np.array([r[3] for r in rows], np.int64),
            box=np.array([f.box for f in faces], np.float32).reshape(-1, 4),
            confidence=np.array([f.score for f in faces], np.float32),
            probabilities=np.array([[f.probabilities[c] for c in classes] for f in faces], np.float32
                                   ).reshape(-1, len(classes)),
            features=np.array([f.embedding for f in faces], np.float32).reshape(-1, dim),
            classes=tuple(classes), model=model,
        )

    def save(self, path: str | Path) -> Path:
        """Write as ``.npz`` or ``.parquet`` (columns ``path, frame, timestamp, face_id, x1..y2, confidence,
        expression, p_<class>..., f_0...f_<D-1>``; classes and model in the file's metadata). Written to a
        temporary name and renamed, so an interrupted write never leaves a half file under ``path``."""
        path = Path(path)
        if path.suffix.lower() not in FEATURE_FORMATS:
            raise UsageError(f"{path}: feature tables are .npz or .parquet files")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        meta = json.dumps({"classes": list(self.classes), "model": self.model, **self.extra})
        if path.suffix.lower() == ".npz":
            with open(tmp, "wb") as f:
                np.savez_compressed(f, path=np.array(self.path, dtype=str), frame=self.frame,
                                    timestamp=self.timestamp, face_id=self.face_id, box=self.box,
                                    confidence=self.confidence, probabilities=self.probabilities,
                                    features=self.features, meta=np.array(meta))
        else:
            self.to_frame().to_parquet(tmp, index=False)
            _set_parquet_meta(tmp, meta)
        tmp.replace(path)
        return path

    def to_frame(self):
        """A pandas DataFrame with the columns ``save`` writes to Parquet."""
        import pandas as pd

        cols = {"path": self.path, "frame": self.frame, "timestamp": self.timestamp, "face_id": self.face_id}
        cols.update({k: self.box[:, i] for i, k in enumerate(("x1", "y1", "x2", "y2"))})
        cols["confidence"] = self.confidence
        cols["expression"] = self.expression
        cols.update({f"p_{c}": self.probabilities[:, i] for i, c in enumerate(self.classes)})
        cols.update({f"f_{i}": self.features[:, i] for i in range(self.features.shape[1])})
        return pd.DataFrame(cols)


def _set_parquet_meta(path: Path, meta: str) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"openfer": meta.encode()})
    pq.write_table(table, path)


def load_features(path: str | Path) -> FeatureTable:
    """Read a table written by ``FeatureTable.save`` (``openfer embed``).

    Raises:
        FileNotFoundError: no such file. ValueError: not an openfer feature table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature table not found")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z or "features" not in z:
                raise UnreadableInputError(f"{path} is not a feature table written by 'openfer embed'")
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files}
        feats = arrays["features"]
        return FeatureTable([str(p) for p in arrays["path"]], arrays["frame"], arrays["timestamp"],
                            arrays["face_id"], arrays["box"], arrays["confidence"], arrays["probabilities"],
                            feats.astype(np.float32), tuple(meta.pop("classes")), meta.pop("model"), meta)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"openfer")
        if raw is None:
            raise UnreadableInputError(f"{path} is not a feature table written by 'openfer embed'")
        meta = json.loads(raw)
        df = table.to_pandas()
        classes = tuple(meta.pop("classes"))
        fcols = [c for c in df.columns if c.startswith("f_")]
        fcols.sort(key=lambda c: int(c[2:]))
        return FeatureTable(df["path"].astype(str).tolist(), df["frame"].to_numpy(np.int64),
                            df["timestamp"].to_numpy(np.float64), df["face_id"].to_numpy(np.int64),
                            df[["x1", "y1", "x2", "y2"]].to_numpy(np.float32), df["confidence"].to_numpy(np.float32),
                            df[[f"p_{c}" for c in classes]].to_numpy(np.float32), df[fcols].to_numpy(np.float32),
                            classes, meta.pop("model"), meta)
    raise UsageError(f"{path}: feature tables are .npz or .parquet files")
