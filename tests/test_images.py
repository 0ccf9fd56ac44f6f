"""Bad and odd inputs through ``openfer.io.images``: every file becomes RGB uint8 [H, W, 3] or one ImageReadError."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from conftest import astronaut, save, write_bytes
from openfer.io.images import (IMAGE_SUFFIXES, OUTPUT_MARKER, ImageReadError, expand_inputs, mark_output_folder,
                               read_image, to_rgb)

# ---------------------------------------------------------------------------------------------------------------
# factories: each writes one file under tmp_path and returns (path, read_image kwargs)
# ---------------------------------------------------------------------------------------------------------------


def _small_rgb(w: int = 64, h: int = 48) -> np.ndarray:
    """A non-square RGB image with a gradient, so orientation and channel order are visible."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 60)], axis=2).astype(np.uint8)


def _valid_bytes(tmp: Path, suffix: str) -> bytes:
    """The bytes of a valid astronaut image file (``.jpg`` or ``.png``)."""
    return save(tmp / f"valid{suffix}", astronaut()).read_bytes()


def _png_with_header_size(tmp: Path, width: int, height: int) -> Path:
    """A small valid PNG whose IHDR is patched (CRC fixed) to claim ``width`` x ``height``."""
    data = bytearray(save(tmp / "tiny.png", np.zeros((4, 4, 3), np.uint8)).read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return write_bytes(tmp / "claims_huge.png", bytes(data))


def f_corrupt(tmp):
    rng = np.random.default_rng(123)
    return write_bytes(tmp / "corrupt.jpg", b"\x00garbage" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()), {}


def f_truncated_jpeg(tmp):
    data = _valid_bytes(tmp, ".jpg")
    return write_bytes(tmp / "truncated.jpg", data[: len(data) // 2]), {}


def f_truncated_png(tmp):
    data = _valid_bytes(tmp, ".png")
    return write_bytes(tmp / "truncated.png", data[: len(data) // 2]), {}


def f_header_only_png(tmp):
    data = _valid_bytes(tmp, ".png")
    return write_bytes(tmp / "header_only.png", data[:40]), {}


def f_empty(tmp):
    return write_bytes(tmp / "empty.png", b""), {}


def f_text(tmp):
    return write_bytes(tmp / "notes.png", b"this is a text file, not a picture\n" * 20), {}


def f_missing(tmp):
    return tmp / "does_not_exist.jpg", {}


def f_directory(tmp):
    d = tmp / "folder.jpg"
    d.mkdir()
    return d, {}


def f_bomb_small_limit(tmp):
    return save(tmp / "hundred.png", np.zeros((100, 100, 3), np.uint8)), {"max_pixels": 1000}


def f_bomb_just_over_limit(tmp):
    # 10,000 pixels with a limit of 8,000: over the limit, but not over PIL's own 2x "error" level.
    return save(tmp / "hundred.png", np.zeros((100, 100, 3), np.uint8)), {"max_pixels": 8000}


def f_bomb_real_large_1bit(tmp):
    # A real 1-bit 3000x3000 image (cheap: ~30 kB on disk) against a 1-megapixel limit.
    return save(tmp / "large_1bit.png", np.zeros((3000, 3000), bool)), {"max_pixels": 1_000_000}


def f_bomb_header_claims_huge(tmp):
    # 100k x 100k = 10 gigapixels claimed by the header; must be refused before any pixel memory is allocated.
    return _png_with_header_size(tmp, 100_000, 100_000), {}


def f_bomb_header_default_limit(tmp):
    # 12k x 12k = 144 Mpx: over the default 128 Mpx limit but under PIL's 2x error level.
    return _png_with_header_size(tmp, 12_000, 12_000), {}


def f_grey16(tmp):
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (8, 1))
    p = save(tmp / "grey16.png", ramp)
    with Image.open(p) as im:
        assert im.mode in ("I;16", "I"), im.mode
    return p, {}


def _four_colours() -> np.ndarray:
    a = np.zeros((12, 16, 3), np.uint8)
    a[:6, :8], a[:6, 8:], a[6:, :8], a[6:, 8:] = (250, 10, 10), (10, 200, 30), (20, 40, 220), (90, 90, 90)
    return a


def f_palette(tmp):
    p = tmp / "palette.png"
    Image.fromarray(_four_colours()).quantize(colors=4).save(p)
    with Image.open(p) as im:
        assert im.mode == "P"
    return p, {}


def f_palette_transparent(tmp):
    idx = np.zeros((10, 12), np.uint8)
    idx[5:] = 1
    img = Image.fromarray(idx, "P")
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p = tmp / "palette_transparent.png"
    img.save(p, transparency=0)  # index 0 (red, top half) is fully transparent
    return p, {}


def f_rgba(tmp):
    a = np.zeros((10, 12, 4), np.uint8)
    a[..., 0] = 255  # red ...
    a[:5, :, 3] = 255  # ... opaque in the top half, fully transparent in the bottom half
    return save(tmp / "rgba.png", a), {}


def f_la(tmp):
    a = np.zeros((10, 12, 2), np.uint8)
    a[..., 0] = 40
    a[:5, :, 1] = 255
    p = save(tmp / "la.png", a)
    with Image.open(p) as im:
        assert im.mode == "LA", im.mode
    return p, {}


def f_cmyk_jpeg(tmp):
    p = save(tmp / "cmyk.jpg", _small_rgb(), mode="CMYK", quality=95)
    with Image.open(p) as im:
        assert im.mode == "CMYK"
    return p, {}


def f_one_bit(tmp):
    a = np.zeros((20, 30), bool)
    a[:, 15:] = True
    return save(tmp / "one_bit.png", a), {}


def _exif_jpeg(tmp, orientation):
    ex = Image.Exif()
    ex[0x0112] = orientation
    return save(tmp / f"exif{orientation}.jpg", _small_rgb(64, 48), exif=ex, quality=95), {}


def f_exif_6(tmp):
    return _exif_jpeg(tmp, 6)


def f_exif_8(tmp):
    return _exif_jpeg(tmp, 8)


def f_gif_multiframe(tmp):
    frames = [Image.new("RGB", (30, 20), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    p = tmp / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100)
    with Image.open(p) as im:
        assert im.n_frames == 3
    return p, {}


def f_grey8(tmp):
    return save(tmp / "grey8.png", _small_rgb()[..., 0]), {}


def f_bmp(tmp):
    return save(tmp / "x.bmp", _small_rgb()), {}


def f_webp(tmp):
    return save(tmp / "x.webp", _small_rgb(), lossless=True), {}


def f_tiff_float(tmp):
    return save(tmp / "float.tif", np.linspace(0, 1, 200, dtype=np.float32).reshape(10, 20)), {}


def f_jpeg_wrong_suffix(tmp):
    p = save(tmp / "real.jpg", _small_rgb(), quality=95)
    return write_bytes(tmp / "actually_jpeg.png", p.read_bytes()), {}


# ---------------------------------------------------------------------------------------------------------------
# checks on successful reads
# ---------------------------------------------------------------------------------------------------------------


def shape(h: int, w: int) -> Callable[[np.ndarray], None]:
    def check(a: np.ndarray) -> None:
        assert a.shape == (h, w, 3)

    check.__name__ = f"shape {h}x{w}"
    return check


def c_grey16(a):
    row = a[0, :, 0].astype(int)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    assert np.all(np.diff(row) >= 0), "16-bit gradient must keep its order"
    assert row[0] == 0 and row[-1] == 255
    assert len(np.unique(row)) > 200, "scaled into 0..255, not clipped"
    assert (row == 255).sum() <= 2
    assert abs(row[128] - 128) <= 2


def c_palette(a):
    np.testing.assert_array_equal(a, _four_colours())


def c_palette_transparent(a):
    assert (a[:5] == 255).all(), "transparent palette entries must come out white"
    assert (a[5:] == [0, 0, 255]).all()


def c_rgba(a):
    assert (a[:5] == [255, 0, 0]).all()
    assert (a[5:] == 255).all(), "transparent pixels must come out white"


def c_la(a):
    assert (a[:5] == 40).all()
    assert (a[5:] == 255).all()


def c_cmyk(a):
    np.testing.assert_allclose(a.astype(int).mean(axis=(0, 1)), _small_rgb().astype(int).mean(axis=(0, 1)), atol=12)
    # the red channel still grows left to right
    assert a[:, -5:, 0].mean() > a[:, :5, 0].mean() + 150


def c_one_bit(a):
    assert (a[:, :15] == 0).all() and (a[:, 15:] == 255).all()


def _c_exif(orientation):
    def check(a):
        src = _small_rgb(64, 48)
        assert a.shape == (64, 48, 3), "EXIF rotation must give the upright (transposed) size"
        upright = np.rot90(src, k=-1 if orientation == 6 else 1)  # 6: rotate 90 CW to view, 8: 90 CCW
        np.testing.assert_allclose(a.astype(int), upright.astype(int), atol=12)

    return check


def c_gif_first_frame(a):
    assert a.shape == (20, 30, 3)
    assert (a == [255, 0, 0]).all()


def c_grey8(a):
    assert a.shape == (48, 64, 3)
    assert (a == _small_rgb()[..., :1]).all()


def c_exact_small_rgb(a):
    assert (a == _small_rgb()).all()


def c_close_small_rgb(a):
    np.testing.assert_allclose(a.astype(int), _small_rgb().astype(int), atol=10)


def c_float_tiff(a):
    assert a.shape == (10, 20, 3)
    row = a[..., 0].reshape(-1).astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


CASES = [
    # name, factory, expected: a check function (success), or a substring (or a tuple of alternatives) of the
    # ImageReadError message
    ("corrupt", f_corrupt, "not an image"),
    ("truncated-jpeg", f_truncated_jpeg, "truncated"),
    ("truncated-png", f_truncated_png, "corrupt"),
    ("header-only-png", f_header_only_png, ("corrupt", "not an image")),
    ("empty", f_empty, "empty"),
    ("text-as-png", f_text, "not an image"),
    ("missing", f_missing, "not found"),
    ("directory", f_directory, "directory"),
    ("bomb-small-limit", f_bomb_small_limit, "pixels"),
    ("bomb-just-over-limit", f_bomb_just_over_limit, "pixels"),
    ("bomb-real-1bit", f_bomb_real_large_1bit, "pixels"),
    ("bomb-header-huge", f_bomb_header_claims_huge, "pixels"),
    ("bomb-header-default-limit", f_bomb_header_default_limit, "pixels"),
    ("grey16", f_grey16, c_grey16),
    ("palette", f_palette, c_palette),
    ("palette-transparent", f_palette_transparent, c_palette_transparent),
    ("rgba", f_rgba, c_rgba),
    ("la", f_la, c_la),
    ("cmyk-jpeg", f_cmyk_jpeg, c_cmyk),
    ("1-bit", f_one_bit, c_one_bit),
    ("exif-6", f_exif_6, _c_exif(6)),
    ("exif-8", f_exif_8, _c_exif(8)),
    ("gif-multiframe", f_gif_multiframe, c_gif_first_frame),
    ("grey8", f_grey8, c_grey8),
    ("bmp", f_bmp, c_exact_small_rgb),
    ("webp-lossless", f_webp, c_exact_small_rgb),
    ("float-tiff", f_tiff_float, c_float_tiff),
    ("jpeg-named-png", f_jpeg_wrong_suffix, c_close_small_rgb),
]


@pytest.mark.parametrize("name,factory,expected", CASES, ids=[c[0] for c in CASES])
def test_read_image(tmp_path, name, factory, expected):
    path, kwargs = factory(tmp_path)
    if isinstance(expected, (str, tuple)):
        with pytest.raises(ImageReadError) as exc:
            read_image(path, **kwargs)
        msg = str(exc.value)
        alternatives = (expected,) if isinstance(expected, str) else expected
        assert any(s in msg.lower() for s in alternatives), msg
        assert "\n" not in msg and len(msg) < 400, "message must be one short readable line"
    else:
        a = read_image(path, **kwargs)
        assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
        expected(a)


def test_read_image_str_and_path(tmp_path):
    p = save(tmp_path / "x.png", _small_rgb())
    np.testing.assert_array_equal(read_image(str(p)), read_image(p))
    np.testing.assert_array_equal(read_image(p), _small_rgb())


def test_read_image_error_is_value_error_and_public(tmp_path):
    import openfer

    assert openfer.ImageReadError is ImageReadError
    assert issubclass(ImageReadError, ValueError)


def test_read_image_restores_pil_limit(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    p = save(tmp_path / "x.png", np.zeros((100, 100, 3), np.uint8))
    read_image(p, max_pixels=20_000)
    with pytest.raises(ImageReadError):
        read_image(p, max_pixels=10)
    assert Image.MAX_IMAGE_PIXELS == before


def test_max_pixels_boundary(tmp_path):
    p = save(tmp_path / "x.png", np.zeros((100, 100, 3), np.uint8))
    assert read_image(p, max_pixels=10_000).shape == (100, 100, 3)  # exactly at the limit is allowed
    with pytest.raises(ImageReadError):
        read_image(p, max_pixels=9_999)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read chmod 000 files")
def test_read_image_permission_denied(tmp_path):
    p = save(tmp_path / "secret.png", _small_rgb())
    p.chmod(0)
    try:
        with pytest.raises(ImageReadError, match="permission"):
            read_image(p)
    finally:
        p.chmod(0o644)


# ---------------------------------------------------------------------------------------------------------------
# expand_inputs
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """tmp/in/{a.jpg, b.PNG, notes.txt, sub/c.png, sub/deeper/d.webp, sub/readme.md}."""
    root = tmp_path / "in"
    for rel in ["a.jpg", "b.PNG", "sub/c.png", "sub/deeper/d.webp"]:
        write_bytes(root / rel, b"x")
    for rel in ["notes.txt", "sub/readme.md"]:
        write_bytes(root / rel, b"text")
    return root


def _rel(paths, root):
    return [p.resolve().relative_to(root.resolve()).as_posix() for p in paths]


def test_expand_folder_recursive(tree):
    got = expand_inputs([str(tree)], recursive=True)
    assert all(isinstance(p, Path) for p in got)
    assert sorted(_rel(got, tree)) == ["a.jpg", "b.PNG", "sub/c.png", "sub/deeper/d.webp"]


def test_expand_folder_not_recursive(tree):
    assert sorted(_rel(expand_inputs([str(tree)], recursive=False), tree)) == ["a.jpg", "b.PNG"]


def test_expand_order_is_stable(tree):
    assert expand_inputs([str(tree)]) == expand_inputs([str(tree)])
    assert _rel(expand_inputs([str(tree)]), tree) == sorted(_rel(expand_inputs([str(tree)]), tree))


@pytest.mark.parametrize(
    "pattern,expected",
    [
        ("*.jpg", ["a.jpg"]),
        ("**/*.png", ["sub/c.png"]),
        ("*", ["a.jpg", "b.PNG"]),  # the glob matches notes.txt and sub/ too: only image files are kept
        ("sub/*", ["sub/c.png"]),
    ],
)
def test_expand_glob(tree, pattern, expected):
    got = expand_inputs([str(tree / pattern)])
    assert sorted(_rel(got, tree)) == expected


def test_expand_explicit_non_image_kept(tree):
    got = expand_inputs([str(tree / "notes.txt")])
    assert got == [tree / "notes.txt"]


@pytest.mark.parametrize("name", ["missing.jpg", "nothing_here/*.jpg"])
def test_expand_nonexistent_kept(tree, name):
    item = str(tree / name)
    assert expand_inputs([item]) == [Path(item)]


def test_expand_duplicates_removed(tree, monkeypatch):
    monkeypatch.chdir(tree)
    items = ["a.jpg", str(tree / "a.jpg"), "./a.jpg", ".", "sub/c.png", "*.jpg", "missing.png", "missing.png"]
    got = expand_inputs(items)
    resolved = [str(p.resolve()) for p in got]
    assert len(resolved) == len(set(resolved))
    assert sorted(_rel([p for p in got if p.exists()], tree)) == ["a.jpg", "b.PNG", "sub/c.png", "sub/deeper/d.webp"]
    assert [p for p in got if not p.exists()] == [Path("missing.png")]
    assert got[0] == Path("a.jpg"), "first mention wins"


def test_expand_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert expand_inputs([str(tmp_path / "empty")]) == []
    assert expand_inputs([]) == []


def test_marked_output_folders_are_skipped(tree):
    """openfer's own outputs (folders it marked) are not inputs; files named one by one always are."""
    assert mark_output_folder(tree / "annotated") and (tree / "annotated" / OUTPUT_MARKER).is_file()
    write_bytes(tree / "annotated" / "a.jpg", b"x")
    write_bytes(tree / "annotated" / "more" / "b.jpg", b"x")
    skipped: list[Path] = []
    got = expand_inputs([str(tree)], skipped=skipped)
    assert sorted(_rel(got, tree)) == ["a.jpg", "b.PNG", "sub/c.png", "sub/deeper/d.webp"]
    assert sorted(_rel(skipped, tree)) == ["annotated/a.jpg", "annotated/more/b.jpg"]
    assert _rel(expand_inputs([str(tree / "annotated" / "*.jpg")]), tree) == []  # a glob into it finds nothing
    assert _rel(expand_inputs([str(tree / "annotated" / "a.jpg")]), tree) == ["annotated/a.jpg"]  # named: kept


def test_a_folder_with_the_users_files_is_never_marked(tree):
    """``--annotate .`` must not turn the user's own photos into outputs."""
    assert not mark_output_folder(tree)
    assert not (tree / OUTPUT_MARKER).exists() and len(expand_inputs([str(tree)])) == 4


def test_heic_photo_is_read_and_found_in_folders(tmp_path):
    """Phone photos (HEIC) are read like any photo, and folder expansion picks them up."""
    heif = pytest.importorskip("pillow_heif", reason="HEIC support comes from pillow-heif (a core dependency)")
    heif.register_heif_opener()  # to write the test file; openfer's reader registers it itself
    rgb = _small_rgb(64, 48)
    Image.fromarray(rgb).save(tmp_path / "phone.HEIC", quality=95)
    got = read_image(tmp_path / "phone.HEIC")
    assert got.shape == (48, 64, 3) and np.abs(got.astype(int) - rgb).mean() < 12
    assert expand_inputs([str(tmp_path)]) == [tmp_path / "phone.HEIC"]


def test_links_fifos_and_devices_never_hang_and_say_what_they_are(tmp_path):
    """Issue 18 item 8 and 9: a glob through a link to '.' ended never; a FIFO named as input blocked forever;
    broken links and link loops in a folder were dropped without a record; /dev/zero was "empty"."""
    tree = tmp_path / "tree"
    save(tree / "a.jpg", _small_rgb())
    (tree / "self").symlink_to(".")
    (tree / "up").symlink_to("..")
    (tree / "dangling.jpg").symlink_to("nowhere.jpg")
    (tree / "loop1.jpg").symlink_to("loop2.jpg")
    (tree / "loop2.jpg").symlink_to("loop1.jpg")
    os.mkfifo(tree / "pipe.jpg")
    found = ["a.jpg", "dangling.jpg", "loop1.jpg", "loop2.jpg"]  # the pipe is no file; the links to folders unfollowed
    assert [p.name for p in expand_inputs([str(tree / "**" / "*.jpg")])] == found
    assert [p.name for p in expand_inputs([str(tree)])] == found
    reasons = {}
    for f in [tree / n for n in found[1:]] + [tree / "pipe.jpg", Path("/dev/zero")]:
        with pytest.raises(ImageReadError) as e:
            read_image(f)
        reasons[f.name] = str(e.value)
    assert reasons["dangling.jpg"].startswith("broken symbolic link (to nowhere.jpg")
    assert reasons["loop1.jpg"].startswith("symbolic link loop")
    assert reasons["pipe.jpg"].startswith("a named pipe") and reasons["zero"].startswith("a device")


def test_an_undecodable_tiff_says_what_it_is(tmp_path):
    """Issue 18 item 9: a floating-point RGB TIFF was "not an image file"; it is a TIFF Pillow cannot decode."""
    tifffile = pytest.importorskip("tifffile", reason="writes the test file (comes with scikit-image)")
    tifffile.imwrite(tmp_path / "f.tif", np.random.default_rng(0).random((8, 8, 3)), photometric="rgb")
    with pytest.raises(ImageReadError, match="a TIFF this reader cannot decode"):
        read_image(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match="not an image file"):
        read_image(b"%PDF-1.7 not an image at all")


def test_image_suffixes_lowercase():
    assert {".jpg", ".jpeg", ".png"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


# ---------------------------------------------------------------------------------------------------------------
# to_rgb on arrays and PIL images
# ---------------------------------------------------------------------------------------------------------------


def _ramp(dtype, hi):
    return (np.linspace(0, hi, 12).reshape(3, 4)).astype(dtype)


TO_RGB_CASES = [
    ("uint8-grey", np.arange(12, dtype=np.uint8).reshape(3, 4), np.arange(12).reshape(3, 4)),
    ("uint8-grey-1ch", np.arange(12, dtype=np.uint8).reshape(3, 4, 1), np.arange(12).reshape(3, 4)),
    ("float-0-1", _ramp(np.float32, 1.0), np.round(np.linspace(0, 255, 12)).reshape(3, 4)),
    ("float64-0-1", _ramp(np.float64, 1.0), np.round(np.linspace(0, 255, 12)).reshape(3, 4)),
    ("uint16-full", _ramp(np.uint16, 65535), np.round(np.linspace(0, 255, 12)).reshape(3, 4)),
    # a 16-bit image with small values is dark, not re-read as 8-bit
    ("uint16-small-values", np.array([[0, 100, 200, 65535]], np.uint16), np.array([[0, 0, 1, 255]])),
    ("bool", np.array([[True, False], [False, True]]), np.array([[255, 0], [0, 255]])),
    ("int64", np.array([[0, 128, 255]], np.int64), np.array([[0, 128, 255]])),
]


@pytest.mark.parametrize("name,array,expected_grey", TO_RGB_CASES, ids=[c[0] for c in TO_RGB_CASES])
def test_to_rgb_arrays(name, array, expected_grey):
    out = to_rgb(array)
    assert out.dtype == np.uint8 and out.shape == expected_grey.shape + (3,)
    for ch in range(3):
        np.testing.assert_allclose(out[..., ch].astype(int), expected_grey, atol=1)


def test_to_rgb_float_nan_and_range():
    a = np.array([[0.0, np.nan, 0.5, 1.0]], np.float32)
    out = to_rgb(a)[..., 0]
    assert out.tolist() == [[0, 0, 128, 255]]  # NaN -> 0, 0.5 -> 127.5 rounds to 128
    big = np.array([[0.0, 20.0, 60.0, 99.9, 100.0]])  # floats above 1 are scaled by their maximum (and rounded)
    assert to_rgb(big)[..., 0].tolist() == [[0, 51, 153, 255, 255]]
    assert to_rgb(np.array([[0.999, 0.2]]))[..., 0].tolist() == [[255, 51]]


def test_to_rgb_rgba_composited_on_white():
    a = np.zeros((2, 3, 4), np.uint8)
    a[..., 0] = 200
    a[0, :, 3] = 255
    a[1, 0, 3] = 0
    a[1, 1, 3] = 128
    a[1, 2, 3] = 255
    out = to_rgb(a)
    assert out.shape == (2, 3, 3)
    assert (out[0] == [200, 0, 0]).all()
    assert (out[1, 0] == [255, 255, 255]).all()
    np.testing.assert_allclose(out[1, 1].astype(int), [227, 127, 127], atol=1)
    assert (out[1, 2] == [200, 0, 0]).all()


def test_to_rgb_rgb_passthrough_is_a_copy():
    a = _small_rgb()
    out = to_rgb(a)
    np.testing.assert_array_equal(out, a)
    assert not np.shares_memory(out, a), "to_rgb promises a new array"
    # non-contiguous input works too
    view = a[:, ::2]
    np.testing.assert_array_equal(to_rgb(view), view)
    assert to_rgb(view).flags.c_contiguous


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((5,), np.uint8),
        np.zeros((2, 3, 2), np.uint8),
        np.zeros((2, 3, 5), np.uint8),
        np.zeros((1, 2, 3, 3), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 0), np.uint8),
        np.zeros((2, 2), np.complex64),
        np.array([["a", "b"], ["c", "d"]]),
    ],
    ids=["1d", "2ch", "5ch", "4d", "zero-h", "zero-w", "complex", "str"],
)
def test_to_rgb_bad_arrays(array):
    with pytest.raises(ImageReadError):
        to_rgb(array)


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "RGBA", "LA", "CMYK", "1", "I", "F", "I;16"])
def test_to_rgb_pil_modes(mode):
    img = Image.fromarray(_small_rgb()).convert(mode) if mode != "I;16" else Image.fromarray(
        (np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16))
    out = to_rgb(img)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
