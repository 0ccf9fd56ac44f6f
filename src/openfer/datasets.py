"""Dataset readers: our fer2013_dev.npz, fer2013.csv + fer2013new.csv as distributed, and class-folder trees."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openfer.errors import UnknownNameError, UnreadableInputError, UsageError
from openfer.labels import (
    CANONICAL8, FER2013_CLASSES, FERPLUS_COLUMNS, FOLDER_LAYOUTS, canonical, ferplus_majority, ferplus_soft,
)

log = logging.getLogger(__name__)

#: Where the shared development data lives unless ``OPENFER_DATA`` or an explicit path says otherwise.
DEFAULT_NPZ = Path("../shared/data/fer2013_dev.npz")


def default_npz_path() -> Path:
    """Path of ``fer2013_dev.npz``: ``$OPENFER_DATA`` if set, else ``../shared/data/fer2013_dev.npz``."""
    return Path(os.environ.get("OPENFER_DATA", DEFAULT_NPZ))


@dataclass(frozen=True)
class FaceSet:
    """A labelled set of grey face crops.

    Attributes:
        pixels: uint8 [N, H, W] grey crops.
        labels: int64 [N] hard label (index into ``classes``).
        targets: float32 [N, C] training target distribution (one-hot or FER+ votes), rows sum to 1.
        classes: class names in canonical form.
        aux: float32 [N, 8] FER+ vote distribution of a ``fer2013``-protocol set read with its votes (all-zero
            rows: no votes for that face), the target of an optional second head (multi-task training); else None.
    """

    pixels: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    classes: tuple[str, ...]
    aux: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "FaceSet":
        """Rows ``idx`` of this set."""
        aux = None if self.aux is None else self.aux[idx]
        return FaceSet(self.pixels[idx], self.labels[idx], self.targets[idx], self.classes, aux)


def from_labels(pixels: np.ndarray, emotion: np.ndarray | None, votes: np.ndarray | None, protocol: str) -> FaceSet:
    """A ``FaceSet`` under a protocol of DATA.md from FER2013-style columns.

    Args:
        pixels: uint8 [N, H, W].
        emotion: original FER2013 labels [N] (0..6), needed for ``"fer2013"``.
        votes: FER+ votes [N, 10], needed for ``"ferplus"``; with ``"fer2013"`` kept as the ``aux`` target.
        protocol: ``"ferplus"`` (8 classes, majority rule, images without a majority dropped, targets are the
            vote distribution) or ``"fer2013"`` (7 original labels, one-hot targets).
    """
    if protocol == "ferplus":
        if votes is None:
            raise UsageError("the ferplus protocol needs FER+ votes (fer2013new.csv, or the npz's ferplus_votes)")
        labels = ferplus_majority(votes)
        ok = labels >= 0
        return FaceSet(pixels[ok], labels[ok], ferplus_soft(votes[ok]), CANONICAL8)
    if protocol == "fer2013":
        if emotion is None:
            raise UsageError("the fer2013 protocol needs the original emotion labels")
        labels = np.asarray(emotion).astype(np.int64)
        targets = np.eye(len(FER2013_CLASSES), dtype=np.float32)[labels]
        aux = None if votes is None else ferplus_soft(votes)
        return FaceSet(pixels, labels, targets, FER2013_CLASSES, aux)
    raise UnknownNameError(f"unknown protocol {protocol!r}; use 'ferplus' or 'fer2013'")


def load_npz(path: str | Path, usage: str, protocol: str = "ferplus") -> FaceSet:
    """Load one split (``"Training"``, ``"PublicTest"``) of ``fer2013_dev.npz`` under a protocol (``from_labels``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: point OPENFER_DATA (or --data) at fer2013_dev.npz"
        )
    with np.load(path, allow_pickle=False) as d:
        keep = d["usage"] == usage
        if not keep.any():
            raise UsageError(f"no rows with usage {usage!r} in {path}")
        return from_labels(d["pixels"][keep], d["emotion"][keep], d["ferplus_votes"][keep], protocol)


def load_fer2013_csv(path: str | Path, usage: str, protocol: str = "fer2013",
                     ferplus_csv: str | Path | None = None) -> FaceSet:
    """Load FER2013 as distributed (``fer2013.csv``: emotion, pixels, Usage), optionally with FER+ votes.

    ``ferplus_csv`` is Microsoft's ``fer2013new.csv`` (Usage, Image name, then the 10 vote columns), joined by row
    order; without it a ``fer2013new.csv`` next to ``path`` is used when present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    emotion, pixels, keep = [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"emotion", "pixels", "Usage"}
        if not need <= set(reader.fieldnames or []):
            raise UnreadableInputError(f"{path} is not fer2013.csv: needs columns {sorted(need)}, "
                                       f"has {reader.fieldnames}")
        for row in reader:
            keep.append(row["Usage"] == usage)
            if keep[-1]:
                emotion.append(int(row["emotion"]))
                values = np.array(row["pixels"].split(), np.uint8)
                side = int(round(np.sqrt(values.size)))
                if side * side != values.size:
                    raise UnreadableInputError(f"{path}: a pixels field has {values.size} values, not a square image")
                pixels.append(values.reshape(side, side))
    if not pixels:
        raise UsageError(f"no rows with Usage {usage!r} in {path}")
    keep_arr = np.array(keep)
    votes = None
    ferplus_csv = Path(ferplus_csv) if ferplus_csv else path.with_name("fer2013new.csv")
    if ferplus_csv.is_file():
        votes = read_ferplus_votes(ferplus_csv)
        if len(votes) != len(keep_arr):
            raise UnreadableInputError(f"{ferplus_csv} has {len(votes)} rows, {path} has {len(keep_arr)}: "
                                       "they must align")
        votes = votes[keep_arr]
    return from_labels(np.stack(pixels), np.array(emotion), votes, protocol)


def read_ferplus_votes(path: str | Path) -> np.ndarray:
    """FER+ votes uint8 [N, 10] from ``fer2013new.csv``, columns in ``FERPLUS_COLUMNS`` order."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = {c.lower(): c for c in (reader.fieldnames or [])}
        missing = [c for c in FERPLUS_COLUMNS if c.lower() not in cols]
        if missing:
            raise UnreadableInputError(f"{path} is not fer2013new.csv: columns {missing} are missing")
        return np.array([[int(float(row[cols[c.lower()]] or 0)) for c in FERPLUS_COLUMNS] for row in reader],
                        np.uint8).reshape(-1, len(FERPLUS_COLUMNS))


def load_image_folder(root: str | Path, size: int = 48, mapping: dict[str, str] | str | None = None) -> FaceSet:
    """Face crops in class folders (``root/<class>/<image>``: RAF-DB, AffectNet, CK+ or your own footage).

    Args:
        root: the folder holding one sub-folder per class.
        size: crops are converted to grey and resized to ``size`` x ``size``.
        mapping: folder name -> label name, or the name of a known layout in ``FOLDER_LAYOUTS`` (``"raf-db"``,
            ``"affectnet"``); by default folder names are label names (``happy``, ``Happiness``, ... are
            accepted, see ``labels.canonical``).

    Returns:
        a set whose classes are the canonical names present, in ``CANONICAL8`` order. Unreadable files are
        skipped and logged.
    """
    import cv2

    from openfer.io.images import IMAGE_SUFFIXES, ImageReadError, read_image

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of class folders")
    if isinstance(mapping, str):
        if mapping not in FOLDER_LAYOUTS:
            raise UnknownNameError(f"unknown folder layout {mapping!r}; known: {sorted(FOLDER_LAYOUTS)}")
        mapping = FOLDER_LAYOUTS[mapping]
    found: list[tuple[Path, str]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        name = (mapping or {}).get(sub.name, sub.name)
        label = canonical(name)
        found += [(f, label) for f in sorted(sub.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise UnreadableInputError(f"no images in class folders under {root}")
    classes = tuple(c for c in CANONICAL8 if c in {lab for _, lab in found})
    pixels, labels = [], []
    for f, lab in found:
        try:
            grey = cv2.cvtColor(read_image(f), cv2.COLOR_RGB2GRAY)
        except ImageReadError as e:
            log.warning("skipping %s: %s", f, e)
            continue
        interp = cv2.INTER_AREA if min(grey.shape) > size else cv2.INTER_LINEAR
        pixels.append(cv2.resize(grey, (size, size), interpolation=interp))
        labels.append(classes.index(lab))
    if not pixels:
        raise UnreadableInputError(f"none of the {len(found)} images under {root} could be read")
    y = np.array(labels, np.int64)
    return FaceSet(np.stack(pixels), y, np.eye(len(classes), dtype=np.float32)[y], classes)


def load_dataset(path: str | Path | None, usage: str = "Training", protocol: str = "ferplus",
                 ferplus_csv: str | Path | None = None, mapping: dict[str, str] | str | None = None,
                 size: int = 48) -> FaceSet:
    """Any supported dataset by path: ``.npz`` (ours), ``.csv`` (fer2013.csv [+ fer2013new.csv]) or a folder of
    class folders (``usage`` picks ``path/<usage>`` when such a sub-folder exists, e.g. ``train``/``test``)."""
    path = Path(path) if path else default_npz_path()
    if path.is_dir():
        split = path / usage
        return load_image_folder(split if split.is_dir() else path, size=size, mapping=mapping)
    if path.suffix == ".csv":
        return load_fer2013_csv(path, usage, protocol, ferplus_csv)
    return load_npz(path, usage, protocol)


def label_shares(path: str | Path | None, protocol: str, usage: str = "Training") -> np.ndarray:
    """Class shares of the hard labels of all ``usage`` rows under ``protocol`` (a model's training prior)."""
    data = load_dataset(path, usage, protocol)
    return np.bincount(data.labels, minlength=len(data.classes)) / len(data.labels)


def load_votes(path: str | Path | None, usage: str = "Training") -> np.ndarray:
    """Raw FER+ vote counts [N, 10] of every ``usage`` row of ``fer2013_dev.npz``, in the row order of the
    ``fer2013`` protocol (the ``ferplus`` protocol drops the rows without a majority)."""
    path = Path(path) if path else default_npz_path()
    if path.suffix != ".npz" or not path.is_file():
        raise UsageError(f"{path}: FER+ votes per row are read from fer2013_dev.npz only")
    with np.load(path, allow_pickle=False) as d:
        return d["ferplus_votes"][d["usage"] == usage]


def ferplus_heldout_split(labels: np.ndarray, votes: np.ndarray, val_fraction: float,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of the ``fer2013`` rows ``labels`` whose validation rows no ``ferplus`` run trained on:
    the FER+ validation split (same fraction and seed) plus ``val_fraction`` of the rows FER+ drops (no majority),
    so a network initialised from a FER+ run is chosen on faces it has never seen, in FER2013's mix."""
    majority = ferplus_majority(votes)
    kept, dropped = np.flatnonzero(majority >= 0), np.flatnonzero(majority < 0)
    val = kept[stratified_split(majority[kept], val_fraction, seed)[1]]
    if len(dropped):
        val = np.sort(np.concatenate([val, dropped[stratified_split(labels[dropped], val_fraction, seed)[1]]]))
    return np.setdiff1d(np.arange(len(labels)), val), val


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val), keeping each class's share; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = max(1, int(round(len(idx) * val_fraction)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def split_rows(labels: np.ndarray, protocol: str, val_fraction: float, seed: int, val_rows: str = "",
               data_path: str | Path | None = None, usage: str = "Training") -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices: stratified on ``labels``, or with ``val_rows = "ferplus_heldout"`` (``fer2013``
    protocol only) the rows no FER+ run with the same fraction and seed trained on (``ferplus_heldout_split``)."""
    if not val_rows:
        return stratified_split(labels, val_fraction, seed)
    if val_rows != "ferplus_heldout" or protocol != "fer2013":
        raise UsageError(f"val_rows = {val_rows!r} with protocol {protocol!r}: the only other choice is "
                         "'ferplus_heldout', for the fer2013 protocol")
    return ferplus_heldout_split(labels, load_votes(data_path, usage), val_fraction, seed)


def photo_draws(labels: np.ndarray, main_prior: np.ndarray, mode: str) -> np.ndarray | None:
    """Draw probabilities of the extra photos (``extra_sampling``), or None to use each photo once per epoch.

    ``"match_prior"``: each photo class is drawn with the share the main (FER) faces give it among the classes the
    photos have. Mostly neutral or happy news photos otherwise teach the network a prior of their own, for
    photo-looking faces, which the balanced objective's one training prior cannot take out.
    """
    if mode not in ("uniform", "match_prior"):
        raise UnknownNameError(f"unknown extra_sampling {mode!r}; use 'uniform' or 'match_prior'")
    if mode == "uniform" or not len(labels):
        return None
    counts = np.bincount(labels, minlength=len(main_prior))
    share = np.where(counts > 0, main_prior, 0.0)
    return (share / share.sum() / np.maximum(counts, 1))[labels]
