"""``openfer explain`` and ``Analyzer.explain``: pictures, JSON Lines records, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import astronaut, chelsea, save, write_bytes
from openfer.cli import app


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_explain_writes_pictures_and_records(tmp_path):
    a = save(tmp_path / "in" / "astro.png", astronaut())
    c = save(tmp_path / "in" / "cat.jpg", chelsea())
    bad = write_bytes(tmp_path / "in" / "broken.jpg", b"not an image")
    res = run_cli("explain", tmp_path / "in", "--out", tmp_path / "out", "--model", "fast", "--quiet")
    assert res.exit_code == 1, res.output  # one input failed, the others were explained
    recs = {r["path"]: r for r in map(json.loads, (tmp_path / "out" / "explanations.jsonl").read_text().splitlines())}
    assert set(recs) == {str(a), str(c), str(bad)}
    assert recs[str(bad)]["ok"] is False and recs[str(bad)]["error"]
    assert recs[str(c)]["num_faces"] == 0 and recs[str(c)]["ok"]
    face = recs[str(a)]["faces"][0]
    e = face["explanation"]
    assert e["method"] == "occlusion" and e["target"] == face["expression"] == "happiness"
    assert abs(sum(e["regions"].values()) - 1) < 1e-3 and e["rationale"].startswith("happiness ")
    assert np.array(e["heatmap"]).shape == (48, 48)
    picture = Image.open(recs[str(a)]["annotated"])
    assert picture.width >= 512 and picture.height > 512  # the image plus one panel per face
    assert Image.open(recs[str(c)]["annotated"]).size == (720, 300)  # no faces: the image alone, padded


def test_cli_explain_rise_without_heatmaps_and_a_target(tmp_path):
    a = save(tmp_path / "astro.jpg", astronaut())
    res = run_cli("explain", a, "--out", tmp_path / "out", "--model", "fast", "--method", "rise", "--masks", "64",
                  "--target", "neutral", "--no-heatmap-json")
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "out" / "explanations.jsonl").read_text())
    e = rec["faces"][0]["explanation"]
    assert e["method"] == "rise" and e["target"] == "neutral" and "heatmap" not in e
    assert "neutral" in res.output  # the sentence is printed


@pytest.mark.parametrize("args, message", [
    (["--method", "lime"], "unknown explanation method"),
    (["--target", "joy"], "unknown class"),
    (["--checkpoint", "missing.pt", "--method", "gradcam"], "no checkpoint"),
    (["--model", "nope"], "nope"),
])
def test_cli_explain_usage_errors(tmp_path, args, message):
    a = save(tmp_path / "astro.jpg", astronaut())
    res = run_cli("explain", a, "--out", tmp_path / "out", *args)
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())


def test_cli_explain_no_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    res = run_cli("explain", tmp_path / "empty", "--out", tmp_path / "out")
    assert res.exit_code == 2 and "no image files" in res.output


def test_analyzer_explain_matches_analyze():
    import openfer

    analyzer = openfer.Analyzer(classifier="fast")
    img = astronaut()
    plain = analyzer.analyze(img)
    explained = analyzer.explain(img, "occlusion")
    assert len(plain) == len(explained) == 1
    assert plain[0].box == explained[0].box and plain[0].explanation is None
    for k, v in plain[0].probabilities.items():  # the explained model's numbers are the analysed ones
        assert explained[0].probabilities[k] == pytest.approx(v, abs=1e-5)
    assert explained[0].explanation.regions["mouth_jaw"] > 0.5


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cli_gradcam_on_a_shipped_model(tmp_path, method):
    pytest.importorskip("torch", reason="Grad-CAM needs the [train] extra")
    a = save(tmp_path / "astro.jpg", astronaut())
    res = run_cli("explain", a, "--out", tmp_path / "out", "--model", "fast", "--method", method, "--quiet")
    assert res.exit_code == 0, res.output
    e = json.loads((tmp_path / "out" / "explanations.jsonl").read_text())["faces"][0]["explanation"]
    assert e["method"] == method and max(max(r) for r in e["heatmap"]) == pytest.approx(1.0, abs=1e-3)


def test_analyzer_gradcam_uses_the_onnx_model_in_pytorch():
    pytest.importorskip("torch", reason="Grad-CAM needs the [train] extra")
    import openfer

    analyzer = openfer.Analyzer(classifier="fast")
    img = astronaut()
    plain, explained = analyzer.analyze(img)[0], analyzer.explain(img, "gradcam")[0]
    for k, v in plain.probabilities.items():  # same model, same numbers, PyTorch instead of ONNX Runtime
        assert explained.probabilities[k] == pytest.approx(v, abs=1e-4)


def test_docstring_example_of_explain_faces():
    import doctest

    import openfer.explain.core

    result = doctest.testmod(openfer.explain.core, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_docs_example_script_runs(tmp_path):
    """docs/explain.md's pictures come from this script; it must keep working with the current code."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(root / "scripts" / "explain_examples.py"), "--out", str(tmp_path),
                          "--model", "fast"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "astronaut-occlusion.jpg").stat().st_size > 10_000
    rec = json.loads((tmp_path / "examples.json").read_text())
    assert "occlusion" in rec["explanations"] and "rise" in rec["explanations"]
    methods = [k for k in rec["explanations"] if k in ("occlusion", "rise", "gradcam", "gradcam++")]
    from openfer.explain.overlay import SCALE_H, THUMB

    assert Image.open(tmp_path / "methods.png").height == (THUMB + 20 + SCALE_H) * len(methods)


def test_cli_explain_video_every_nth_frame_per_track(tmp_path):
    pytest.importorskip("trackers", reason="video needs the [video] extra")
    from conftest import moving_faces_video

    n = 12  # two people, 12 frames, side by side
    path = tmp_path / "two.avi"
    moving_faces_video(path, {0: [(10 + i, 40, 150) for i in range(n)], 1: [(170 - i, 40, 150) for i in range(n)]})
    res = run_cli("explain", path, "--out", tmp_path / "out", "--model", "fast", "--every-track", "5",
                  "--masks", "32", "--method", "rise")
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in (tmp_path / "out" / "explanations.jsonl").read_text().splitlines()]
    per_track: dict[int, list[int]] = {}
    for r in recs:
        assert (tmp_path / "out" / f"frame_{r['frame']:06d}.png").exists() and r["frame"] >= 1  # from 1, as rows
        assert r["annotated"] == str(tmp_path / "out" / f"frame_{r['frame']:06d}.png") and r["path"] == str(path)
        for f in r["faces"]:
            assert f["explanation"]["method"] == "rise" and "heatmap" not in f["explanation"]
            per_track.setdefault(f["face_id"], []).append(r["frame"])
    assert len(per_track) == 2
    for frames in per_track.values():  # every 5th frame the person is tracked in: 3 of 12 (or 2 if confirmed late)
        assert len(frames) in (2, 3) and all(b - a == 5 for a, b in zip(frames, frames[1:]))


def test_cli_explain_geometry_without_its_model_is_a_usage_error(tmp_path):
    a = save(tmp_path / "astro.jpg", astronaut())
    res = run_cli("explain", a, "--out", tmp_path / "out", "--geometry", "--model-dir", tmp_path / "nowhere")
    assert res.exit_code == 2 and "error" in res.output
