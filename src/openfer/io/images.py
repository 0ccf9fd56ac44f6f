"""Robust image reading: every odd file becomes an RGB uint8 array or one clear ``ImageReadError``."""

from __future__ import annotations

import glob
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from openfer.errors import ImageReadError, ImageTooLargeError

#: File name endings that folder and glob expansion pick up (explicitly named files are always tried). HEIC/HEIF
#: (phone photos) are read through pillow-heif.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pnm", ".pbm",
     ".heic", ".heif", ".hif"}
)
#: A file openfer writes into every folder of images it makes (annotated copies, explanation maps), so a later
#: run over a folder that contains them does not analyse openfer's own outputs as new photos.
OUTPUT_MARKER = ".openfer-output"
#: Images with more pixels than this are refused (decompression-bomb guard); about 16k x 8k.
DEFAULT_MAX_PIXELS = 128_000_000


def _register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF files (pillow-heif, a dependency), once."""
    global _register_heif
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # not installed (a trimmed environment): such files are reported as unreadable
        pass
    else:
        register_heif_opener()
    _register_heif = lambda: None  # noqa: E731 - later calls are free


def mark_output_folder(folder: str | Path) -> bool:
    """Create ``folder`` (and parents) for openfer's outputs and mark it (``OUTPUT_MARKER``), so ``expand_inputs``
    skips what is inside; returns whether it is marked. A folder that already holds other files (the user's own,
    e.g. ``--annotate .``) is used but never marked: their photos must stay inputs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OUTPUT_MARKER
    if marker.is_file():
        return True
    if any(folder.iterdir()):
        return False
    marker.write_text("Written by openfer: images in this folder are its outputs (annotated copies, explanations); "
                      "folder and glob inputs of openfer skip them. Delete this file to analyse them as inputs.\n")
    return True


def read_image(path: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a file (or the bytes of one, e.g. an upload) as RGB uint8 [H, W, 3], upright (EXIF orientation applied).

    16-bit and float images are scaled to 8 bits, palette/grey/CMYK converted, transparency composited on white;
    multi-frame files give their first frame.

    Raises:
        openfer.ImageReadError: unreadable path, not an image, truncated or corrupt data (an
            ``openfer.UnreadableInputError``); ``openfer.ImageTooLargeError``, a subclass, for too many pixels.
    """
    return read_image_reduced(path, max_pixels=max_pixels).rgb


@dataclass(frozen=True)
class ReducedImage:
    """An image decoded at a reduced size: ``rgb`` [h, w, 3] holds every ``factor``-th pixel's neighbourhood of the
    ``width`` x ``height`` original (after EXIF rotation), so original pixel = reduced pixel x ``factor``."""

    rgb: np.ndarray
    factor: int
    width: int
    height: int


def read_image_reduced(path: str | Path | bytes, keep_side: Callable[[int, int], int] | None = None,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> ReducedImage:
    """``read_image``, decoded at 1/k of the size (integer k) when a longer side of ``keep_side(width, height)``
    pixels is all that is needed; a server uses this to analyse big photos in a fraction of the memory.

    JPEGs are decoded at the smaller size directly (``Image.draft``: DCT scaling, 1/2 to 1/8); other formats are
    decoded whole once, then box-averaged (``Image.reduce``) before any conversion, so the copies made for
    conversion and compositing are small. The longer side kept is at least ``keep_side`` (it may be up to twice
    that); the pixel limit applies to the original's header.

    Args:
        keep_side: the longer side (pixels) the caller needs, given the original's width and height; None or a
            side at least the original's keeps full resolution (exactly ``read_image``).

    Raises:
        ImageReadError: as ``read_image``.
    """
    _register_heif()
    data = path if isinstance(path, bytes) else None
    path = io.BytesIO(data) if data is not None else Path(path)
    if data is None:
        _check_regular_file(path)
    try:
        # Our pixel limit is checked from the header, before any decoding. Pillow's own global limit is left
        # alone (changing it per call would race between threads); its warning is silenced since ours decides,
        # and its error (above twice its limit) is reported below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"image is {width}x{height} = {width * height:,} pixels, more than the "
                        f"limit of {max_pixels:,} (decompression-bomb guard)"
                    )
                want = max(width, height) // max(1, keep_side(width, height)) if keep_side else 1
                small, factor = _reduce(img, want)
                upright = ImageOps.exif_transpose(small)
                if upright.size != small.size and upright.size == small.size[::-1]:
                    width, height = height, width
                return ReducedImage(to_rgb(upright), factor, width, height)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except IsADirectoryError:
        raise ImageReadError("is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError("permission denied") from None
    except UnidentifiedImageError:
        size = len(data) if data is not None else (path.stat().st_size if path.exists() else 0)
        reason = "file is empty" if size == 0 else _unreadable_kind(data if data is not None else path)
        raise ImageReadError(reason) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"too many pixels (decompression-bomb guard): {e}") from None
    except OSError as e:
        raise ImageReadError(f"corrupt or truncated image data: {e}") from None
    except (ValueError, SyntaxError, EOFError, IndexError, KeyError) as e:
        raise ImageReadError(f"corrupt image data: {e}") from None


#: Modes ``Image.reduce`` cannot average, and the mode each is converted to first.
_REDUCE_MODES = {"P": "RGBA", "1": "L", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}


def _reduce(img: Image.Image, factor: int) -> tuple[Image.Image, int]:
    """``img`` loaded at 1/``factor`` of its size (or full size when ``factor`` < 2), and the factor used."""
    if factor < 2:
        img.load()
        return img, 1
    width = img.width
    if img.format == "JPEG":
        img.draft(img.mode, (img.width // factor, img.height // factor))  # decodes at 1/2, 1/4 or 1/8 directly
    img.load()
    done = max(1, round(width / img.width))
    rest = factor // done
    if rest < 2:
        return img, done
    full = img
    if img.mode in _REDUCE_MODES:
        mode = _REDUCE_MODES[img.mode]
        img = img.convert("RGB" if mode == "RGBA" and "transparency" not in img.info else mode)
    small = img.reduce(rest)
    small.info = dict(full.info)  # EXIF orientation and transparency go with the pixels
    full.close()  # frees the full-size pixels now, before the conversions of the small copy
    img.close()
    return small, done * rest


#: First bytes of TIFF files: a family with many variants (floating-point colour, unusual compressions) that Pillow
#: cannot identify although the file is a valid image.
_TIFF_HEADS = (b"II*\x00", b"MM\x00*")


def _unreadable_kind(source: Path | bytes) -> str:
    """Why Pillow could not identify a file: a TIFF in a variant it cannot decode says so and what to do; anything
    else is not an image file (or a damaged one)."""
    try:
        if isinstance(source, bytes):
            head = source[:4]
        else:
            with source.open("rb") as f:
                head = f.read(4)
    except OSError:
        head = b""
    if head in _TIFF_HEADS:
        return ("a TIFF this reader cannot decode (floating-point colour, an unusual compression, or a damaged "
                "file); save it as an 8- or 16-bit PNG or TIFF")
    return "not an image file (or a format that cannot be read)"


def _check_regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: a pipe would block forever, a device never ends."""
    import errno
    import os
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageReadError(f"broken symbolic link (to {os.readlink(path)}, which does not exist)") from None
        raise ImageReadError("file not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageReadError("symbolic link loop (the link points back to itself)") from None
        if e.errno == errno.EACCES:
            raise ImageReadError("permission denied") from None
        raise ImageReadError(f"cannot read: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise ImageReadError("is a directory, not an image file")
    if not stat.S_ISREG(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise ImageReadError(f"{kind}, not an image file (only regular files are read)")


def _glob(pattern: str) -> list[Path]:
    """Paths matching a glob pattern, without following symbolic links to folders (``**`` through a link to
    ``.`` would never end) and, as the shell does, without hidden names the pattern does not spell out."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:first]) if first else Path()
    found = []
    for m in root.glob(str(Path(*parts[first:]))):
        rel = m.relative_to(root).parts
        if not any(name.startswith(".") and not spec.startswith(".") for name, spec in zip(rel, parts[first:])):
            found.append(m)
    return sorted(found)


def to_rgb(img: Image.Image | np.ndarray) -> np.ndarray:
    """A PIL image or an array in any common mode -> RGB uint8 [H, W, 3] (a new array)."""
    if isinstance(img, np.ndarray):
        return _array_to_rgb(img)
    if img.mode.startswith("I;16"):
        return _array_to_rgb(np.asarray(img).astype(np.uint16))
    if img.mode == "I":  # what PIL makes of 16-bit PNGs: read as 16-bit unless the values need 32
        a = np.asarray(img)
        return _array_to_rgb(a.astype(np.uint16) if a.size and 0 <= a.min() and a.max() <= 65535 else a)
    if img.mode == "F":
        return _array_to_rgb(np.asarray(img))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def _array_to_rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ImageReadError(f"expected an image array [H, W], [H, W, 3] or [H, W, 4], got shape {a.shape}")
    if a.dtype != np.uint8:
        if a.dtype == np.bool_:
            a = a.astype(np.uint8) * 255
        elif np.issubdtype(a.dtype, np.floating):
            finite = a[np.isfinite(a)]
            hi = float(finite.max()) if finite.size else 1.0
            scale = 255.0 if hi <= 1.0 else 255.0 / hi
            a = np.clip(np.nan_to_num(a) * scale, 0, 255).round().astype(np.uint8)
        elif np.issubdtype(a.dtype, np.integer):
            # 8/16-bit types set the range themselves (a dark 16-bit image stays dark); wider integers (Python
            # ints, NumPy's default int64) get the smallest of 8/16/32 bits that holds their values.
            if a.dtype.itemsize <= 2:
                bits = 8 * a.dtype.itemsize
            else:
                hi = int(a.max())
                bits = 8 if hi <= 255 else (16 if hi <= 65535 else 32)
            a = (a.astype(np.float64) / (2**bits - 1) * 255).round().clip(0, 255).astype(np.uint8)
        else:
            raise ImageReadError(f"unsupported image dtype {a.dtype}")
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255
        return (a[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return np.array(a, order="C")  # a copy: an RGB uint8 input must not come back as the caller's own array


def expand_inputs(items: list[str], recursive: bool = True, skipped: list[Path] | None = None) -> list[Path]:
    """Files, folders and glob patterns -> a list of paths, in a stable order, duplicates removed.

    A named file is kept whatever its ending (so a wrong file gives a clear error later); folders and globs
    contribute files whose ending is in ``IMAGE_SUFFIXES`` (broken symbolic links too, so each gets its error
    record), except openfer's own outputs: files inside a folder marked by ``mark_output_folder`` (appended to
    ``skipped`` when given). Links to folders are not followed. A name that matches nothing is kept as-is, so it is
    reported as "file not found" rather than silently skipped.
    """
    marked: dict[Path, bool] = {}

    def is_output(f: Path) -> bool:
        parent = f.parent.resolve()
        for folder in (parent, *parent.parents):
            if folder not in marked:
                marked[folder] = (folder / OUTPUT_MARKER).is_file()
            if marked[folder]:
                return True
        return False

    left: list[Path] = []

    def images(found) -> list[Path]:
        keep = []
        for f in found:
            if f.suffix.lower() in IMAGE_SUFFIXES and (f.is_file() or (f.is_symlink() and not f.exists())):
                (left if is_output(f) else keep).append(f)
        return keep

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(images(sorted(p.glob("**/*" if recursive else "*"))))
        elif p.exists() or not glob.has_magic(item):
            out.append(p)
        else:
            n_left = len(left)
            files = images(_glob(item))
            out.extend(files if files or len(left) > n_left else [p])
    if skipped is not None:
        skipped.extend(left)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique
