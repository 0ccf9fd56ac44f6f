"""Issue 17: typed errors (openfer.errors), raised where a user causes them; DetectorSettings;
TrainConfig refusing unknown keys."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import openfer
import openfer.errors
from openfer.classify.prior import check_prior
from openfer.detect import CenterFaceDetector, DetectorSettings, HaarDetector, load_detector
from openfer.errors import (ImageReadError, ImageTooLargeError, MissingExtraError, OpenferError, UnknownNameError,
                            UnreadableInputError, UsageError, require_extra)
from openfer.explain.core import check_request
from openfer.geometry import ModelNotFoundError
from openfer.heads import LabelFileError
from openfer.io.images import read_image
from openfer.io.rows import RowWriter
from openfer.video import Sampling, VideoOpenError, open_source
from openfer.zoo.registry import get_spec


# ---------------------------------------------------------------------------------------------------------------
# The hierarchy: every class is an OpenferError and the built-in exception the same failure raised before
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, builtins", [
    (UnknownNameError, (KeyError, ValueError)),
    (MissingExtraError, (ImportError,)),
    (UnreadableInputError, (ValueError,)),
    (ImageReadError, (UnreadableInputError, ValueError)),
    (ImageTooLargeError, (ImageReadError, ValueError)),
    (UsageError, (ValueError,)),
    (VideoOpenError, (UnreadableInputError,)),
    (LabelFileError, (UnreadableInputError, ValueError)),
    (ModelNotFoundError, (FileNotFoundError,)),
])
def test_each_error_is_an_openfer_error_and_its_old_builtin(cls, builtins):
    assert issubclass(cls, OpenferError)
    for b in builtins:
        assert issubclass(cls, b)


def test_errors_are_exported_lazily_and_io_keeps_its_name():
    from openfer.io.images import ImageReadError as from_io

    assert openfer.OpenferError is OpenferError and openfer.UsageError is UsageError
    assert openfer.ImageReadError is from_io is ImageReadError
    assert set(openfer.errors.__all__) >= {n for n in openfer.__all__ if n.endswith("Error")}


def test_unknown_name_reads_as_its_message_not_a_quoted_key():
    e = UnknownNameError("unknown model 'x'", name="x", known=("a", "b"))
    assert str(e) == "unknown model 'x'" and e.name == "x" and e.known == ("a", "b")
    assert str(KeyError("unknown model 'x'")) == "\"unknown model 'x'\""  # what a plain KeyError would print


def test_missing_extra_names_the_extra_to_install():
    with pytest.raises(MissingExtraError) as exc:
        require_extra("openfer_no_such_module", "video", "tracking needs trackers")
    assert exc.value.extra == "video"
    assert str(exc.value).startswith("tracking needs trackers: pip install 'openfer[video]'")
    require_extra("numpy", "video", "never raised")  # installed: nothing happens


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


#: (call, expected error, text in the message): places where a user's input causes the error.
USER_ERRORS = [
    (lambda: load_detector("hair"), UnknownNameError, "did you mean 'haar'"),
    (lambda: get_spec("defualt"), UnknownNameError, "did you mean 'default'"),
    (lambda: openfer.load_classifier("nope"), UnknownNameError, "registered models"),
    (lambda: check_prior("even"), UnknownNameError, "balanced"),
    (lambda: check_request(None, "lime", None), UnknownNameError, "occlusion"),
    (lambda: RowWriter("rows.txt", ("a", "b")), UnknownNameError, ".csv"),
    (lambda: read_image(b"not an image"), ImageReadError, "not an image"),
    (lambda: read_image(_png(40, 30), max_pixels=1000), ImageTooLargeError, "1,200 pixels"),
    (lambda: open_source("/no/such/video.mp4"), UnreadableInputError, "file not found"),
    (lambda: Sampling(every=0), UsageError, "every"),
    (lambda: DetectorSettings(threshold=2.0), UsageError, "between 0 and 1"),
]


@pytest.mark.parametrize("call, error, needle", USER_ERRORS)
def test_user_caused_errors_have_their_type(call, error, needle):
    with pytest.raises(error) as exc:
        call()
    assert needle in str(exc.value)


# ---------------------------------------------------------------------------------------------------------------
# DetectorSettings
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"name": "retina"}, UnknownNameError, "available: centerface, haar"),
    ({"threshold": -0.1}, UsageError, "between 0 and 1"),
    ({"threshold": float("nan")}, UsageError, "between 0 and 1"),
    ({"max_side": 0}, UsageError, "max_side"),
    ({"max_shrink": 0.5}, UsageError, "max_shrink"),
    ({"max_shrink": float("inf")}, UsageError, "max_shrink"),
    ({"threshold": 0.0, "max_side": None, "max_shrink": None}, None, None),
])
def test_detector_settings_are_checked(kwargs, error, needle):
    if error is None:
        DetectorSettings(**kwargs)
        return
    with pytest.raises(error, match=needle):
        DetectorSettings(**kwargs)


def test_detector_settings_load_the_detector_they_describe():
    det = DetectorSettings(threshold=0.5, max_side=1280, upscale=True, max_shrink=None).load()
    assert isinstance(det, CenterFaceDetector)
    assert (det.threshold, det.max_side, det.upscale, det.max_shrink) == (0.5, 1280, True, None)
    default = DetectorSettings().load()
    fresh = CenterFaceDetector()
    assert (default.threshold, default.max_side, default.upscale, default.max_shrink) == \
        (fresh.threshold, fresh.max_side, fresh.upscale, fresh.max_shrink)
    assert isinstance(DetectorSettings(name="haar", threshold=0.9).load(), HaarDetector)  # Haar has no tunables


# ---------------------------------------------------------------------------------------------------------------
# TrainConfig refuses unknown keys, with the near match
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("toml, error, message", [
    ("lr_mult = 0.1\n", UnknownNameError, "unknown key 'lr_mult' in {path}; did you mean 'backbone_lr_mult'?"),
    ("epoch = 3\n", UnknownNameError, "unknown key 'epoch' in {path}; did you mean 'epochs'?"),
    ("epoch = 3\nzzz = 1\n", UnknownNameError,
     "unknown keys in {path}: 'epoch' (did you mean 'epochs'?), 'zzz'"),
    ("[augment]\nrotate = 5\n", UnknownNameError,
     "unknown key 'rotate' in [augment] of {path}; did you mean 'rotate_deg'?"),
    ("epochs = \n", UnreadableInputError, "{path} is not valid TOML"),
])
def test_train_config_rejects_unknown_keys_with_a_suggestion(tmp_path, toml, error, message):
    pytest.importorskip("torch", reason="TrainConfig lives in the [train] extra")
    from openfer.train.loop import TrainConfig

    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(error) as exc:
        TrainConfig.from_toml(path)
    assert str(exc.value).startswith(message.format(path=path))
    good = tmp_path / "good.toml"
    good.write_text("backbone_lr_mult = 0.1\nepochs = 3\n[augment]\nrotate_deg = 5\n")
    cfg = TrainConfig.from_toml(good, epochs=4)
    assert (cfg.backbone_lr_mult, cfg.epochs, cfg.augment) == (0.1, 4, {"rotate_deg": 5})
