"""Issue 17: typed errors (openfer.errors), the CLI catching only those, one DetectorSettings for every command that
finds faces, and TrainConfig refusing unknown keys."""

from __future__ import annotations

import inspect
import io

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import openfer
import openfer.errors
from conftest import astronaut, moving_faces_video, save
from openfer.classify.prior import check_prior
from openfer.cli import app
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


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    return " ".join(text.split())


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
    ({"name": "retina"}, UnknownNameError, "registered detectors: centerface, haar"),
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


@pytest.mark.parametrize("command", ["analyze", "explain", "embed", "fit"])
def test_every_command_declares_the_detection_options_alike(command):
    """One declaration: the same names, defaults (DetectorSettings'), ranges and help in every command."""
    import typer.main

    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    analyze = {p.name: p for p in typer.main.get_command(app).commands["analyze"].params}
    defaults = DetectorSettings()
    assert params["detector"].default == defaults.name
    assert params["threshold"].default == defaults.threshold
    assert params["max_side"].default == defaults.max_side
    for name in ("detector", "threshold", "max_side"):
        assert params[name].help == analyze[name].help and params[name].opts == analyze[name].opts
    assert (params["threshold"].min, params["threshold"].max, params["max_side"].min) == (0.0, 1.0, 0)
    assert inspect.signature(DetectorSettings).parameters["upscale"].default == analyze["upscale"].default


@pytest.fixture
def loads(monkeypatch):
    """The DetectorSettings every CLI command loads its detector from."""
    seen: list[DetectorSettings] = []
    real = DetectorSettings.load

    def load(self, threads=0):
        seen.append(self)
        return real(self, threads)

    monkeypatch.setattr(DetectorSettings, "load", load)
    return seen


def test_photos_search_big_images_finer_and_videos_keep_one_pass(tmp_path, loads):
    photo = save(tmp_path / "a.png", astronaut())
    assert run_cli("analyze", photo, "--jsonl", tmp_path / "r.jsonl", "--threshold", "0.4", "--max-side", "0",
                   "-q").exit_code == 0
    video = tmp_path / "v.avi"
    moving_faces_video(video, {0: [(10, 5, 80)] * 3})
    res = run_cli("analyze", video, "--out", tmp_path / "rows.csv", "--threshold", "0.4", "--upscale", "-q")
    assert res.exit_code == 0, res.output
    assert loads == [DetectorSettings(threshold=0.4, max_side=None),
                     DetectorSettings(threshold=0.4, upscale=True, max_shrink=None)]


def test_embed_and_explain_build_their_detector_from_their_options(tmp_path, loads):
    photo = save(tmp_path / "a.png", astronaut())
    assert run_cli("embed", photo, "--out", tmp_path / "f.npz", "--detector", "haar", "-q").exit_code == 0
    assert run_cli("explain", photo, "--out", tmp_path / "why", "--max-side", "320", "--method", "rise",
                   "--masks", "8", "-q").exit_code == 0
    assert loads == [DetectorSettings(name="haar"), DetectorSettings(max_side=320)]


@pytest.mark.parametrize("command", ["analyze", "explain", "embed", "fit"])
def test_an_out_of_range_threshold_is_a_usage_error_everywhere(tmp_path, command):
    photo = save(tmp_path / "a.png", astronaut())
    res = run_cli(command, photo, "--out", tmp_path / "o.onnx", "--threshold", "1.5")
    assert res.exit_code == 2 and "less than or equal to 1" in flat(res.output.replace("│", " "))


# ---------------------------------------------------------------------------------------------------------------
# The CLI reports what a user caused (exit 2) and lets a bug surface
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["analyze", "{photo}", "--jsonl", "{tmp}/r.jsonl"],
                                     ["explain", "{photo}", "--out", "{tmp}/why"],
                                     ["embed", "{photo}", "--out", "{tmp}/f.npz"]])
@pytest.mark.parametrize("bug", [ValueError("an index went wrong"), KeyError("a missing dict key"),
                                 ImportError("cannot import name 'x' from 'openfer.y'")])
def test_a_library_bug_is_a_crash_not_a_usage_error(tmp_path, monkeypatch, command, bug):
    def broken(self, threads=0):
        raise bug

    monkeypatch.setattr(DetectorSettings, "load", broken)
    photo = save(tmp_path / "a.png", astronaut())
    res = run_cli(*(a.format(photo=photo, tmp=tmp_path) for a in command))
    assert res.exit_code not in (0, 2) and res.exception is bug  # the traceback goes to the user / the bug report
    assert "error:" not in res.output


@pytest.mark.parametrize("command", [["analyze", "{photo}", "--jsonl", "{tmp}/r.jsonl"],
                                     ["explain", "{photo}", "--out", "{tmp}/why"],
                                     ["embed", "{photo}", "--out", "{tmp}/f.npz"],
                                     ["evaluate", "--data", "{tmp}"],
                                     ["adapt", "{photo}", "--out", "{tmp}/a.onnx"]])
def test_an_unknown_model_is_still_a_usage_error(tmp_path, command):
    photo = save(tmp_path / "a.png", astronaut())
    res = run_cli(*(a.format(photo=photo, tmp=tmp_path) for a in command), "--model", "defualt")
    assert res.exit_code == 2, res.output
    assert "error: unknown model 'defualt'; registered models:" in flat(res.output)
    assert "did you mean 'default'?" in flat(res.output) and "Traceback" not in res.output


def test_an_unknown_detector_is_a_usage_error_before_any_model_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(DetectorSettings, "load", lambda self: pytest.fail("loaded a detector"))
    res = run_cli("analyze", save(tmp_path / "a.png", astronaut()), "--detector", "hair")
    assert res.exit_code == 2 and "unknown detector 'hair'" in res.output and "did you mean 'haar'" in res.output


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


def test_train_command_reports_an_unknown_key_as_a_usage_error(tmp_path):
    pytest.importorskip("torch", reason="training needs the [train] extra")
    path = tmp_path / "config.toml"
    path.write_text("lr_mult = 0.1\n")
    res = run_cli("train", path, tmp_path / "run")
    assert res.exit_code == 2 and "did you mean 'backbone_lr_mult'?" in flat(res.output)
    assert not (tmp_path / "run").exists()
