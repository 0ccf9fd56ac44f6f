"""Issue 19: the Ray engine gives the single-machine run's outputs, survives a killed worker and resumes.

The Ray tests share one local Ray (2 CPUs, a small object store) started once for this module; each run of
``openfer.scale.analyze`` reuses it. They need the [scale] extra (in [dev]).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import astronaut, chelsea, moving_faces_video, scattered_heads
from openfer.cli import app
from openfer.io.rows import read_rows
from openfer.scale import AnalysisSettings

SETTINGS = AnalysisSettings(model="fast")


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# -- without Ray ---------------------------------------------------------------------------------------------------

def test_settings_pickle_and_build_an_analyzer_with_its_threads():
    settings = pickle.loads(pickle.dumps(AnalysisSettings(model="fast", threads=1, every=2)))
    analyzer = settings.analyzer("video")
    assert analyzer.detector.max_shrink is None and settings.analyzer("photos").detector.max_shrink is not None
    assert analyzer.classifier.session.get_session_options().intra_op_num_threads == 1
    assert analyzer.detector.session.get_session_options().intra_op_num_threads == 1
    assert settings.manifest_settings()["every"] == 2 and "threads" not in settings.manifest_settings()


@pytest.mark.parametrize("kwargs, message", [({"threads": -1}, "threads"), ({"smooth": 0}, "smooth"),
                                             ({"every": 0}, "every")])
def test_settings_refuse_out_of_range_values(kwargs, message):
    from openfer.errors import UsageError

    with pytest.raises(UsageError, match=message):
        AnalysisSettings(**kwargs)


@pytest.mark.parametrize("args, message", [
    (["--engine", "ray"], "give --out FOLDER"),
    (["--engine", "ray", "--out", "x.csv"], "give --out FOLDER"),
    (["--engine", "ray", "--out", "res", "--jsonl", "a.jsonl"], "--jsonl do not apply with --engine ray"),
    (["--engine", "ray", "--out", "res", "--workers", "0"], "--workers must be at least 1"),
    (["--workers", "2", "--jsonl", "-"], "only apply with --engine ray"),
])
def test_cli_engine_usage_errors(tmp_path, args, message):
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), astronaut())
    res = run_cli("analyze", photo, *args)
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output


# -- with a local Ray ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="the Ray engine needs the [scale] extra")
    ray.init(num_cpus=2, object_store_memory=80 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """in/{a.avi, sub/a.avi (same name), p0-p3.jpg (2 heads each), cat.png (no face), bad.jpg (not an image),
    big.jpg (2600 px, searched at finer scales)}."""
    root = tmp_path_factory.mktemp("scale") / "in"
    moving_faces_video(root / "a.avi", {0: [(30 + i, 50, 90) for i in range(12)],
                                        1: [(200, 80, 70) if i < 8 else None for i in range(12)]})
    moving_faces_video(root / "sub" / "a.avi", {0: [(150, 60 + i, 80) for i in range(10)]})
    for i in range(4):
        img, _ = scattered_heads(480, 360, 2, seed=i, lo=100, hi=140)
        cv2.imwrite(str(root / f"p{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "cat.png"), cv2.cvtColor(chelsea(), cv2.COLOR_RGB2BGR))
    (root / "bad.jpg").write_bytes(b"not an image" * 10)
    big, _ = scattered_heads(2600, 1800, 6, seed=7, lo=60, hi=70)
    cv2.imwrite(str(root / "big.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    return root


def run_in(folder: Path, *args):
    """``run_cli`` from ``folder`` (inputs given relative to it, as users do)."""
    import os

    here = os.getcwd()
    os.chdir(folder)
    try:
        return run_cli(*args)
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    """The single-machine run of the same inputs (openfer analyze in --out DIR, from the folder above)."""
    out = tmp_path_factory.mktemp("single") / "out"
    res = run_in(inputs.parent, "analyze", "in", "--out", out, "--model", "fast", "-q")
    assert res.exit_code == 1, res.output  # bad.jpg
    return out


def photo_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "photos.jsonl").read_text().splitlines()]


def assert_same_results(out: Path, reference: Path) -> None:
    """Rows (face ids, boxes, probabilities to float tolerance), summaries, photo records and face rows of two
    result folders are the same, each input once."""
    for rows in sorted(reference.glob("*.rows.csv")):
        a, b = read_rows(out / rows.name), read_rows(rows)
        assert list(a.columns) == list(b.columns) and len(a) == len(b)
        assert (a.face_id.fillna(-1).to_numpy() == b.face_id.fillna(-1).to_numpy()).all()
        num = [c for c in a.columns if a[c].dtype.kind == "f"]
        np.testing.assert_allclose(a[num].to_numpy(), b[num].to_numpy(), atol=1e-5)
        sa = json.loads((out / rows.name.replace(".rows.csv", ".summary.json")).read_text())
        sb = json.loads(rows.with_name(rows.name.replace(".rows.csv", ".summary.json")).read_text())
        assert [t["face_id"] for t in sa["tracks"]] == [t["face_id"] for t in sb["tracks"]]
    recs, ref = photo_records(out), photo_records(reference)
    assert [r["path"] for r in recs] == [r["path"] for r in ref]
    assert len({r["path"] for r in recs}) == len(recs)
    for r, s in zip(recs, ref):
        assert (r["ok"], r["num_faces"], r["error"], r["detect_sides"]) == (s["ok"], s["num_faces"], s["error"],
                                                                           s["detect_sides"])
        for f, g in zip(r["faces"], s["faces"]):
            np.testing.assert_allclose(f["box"], g["box"], atol=1e-3)
            np.testing.assert_allclose(list(f["probabilities"].values()), list(g["probabilities"].values()),
                                       atol=1e-5)
    pd.testing.assert_frame_equal(pd.read_csv(out / "photos.csv"), pd.read_csv(reference / "photos.csv"),
                                  atol=1e-5)
    pd.testing.assert_frame_equal(pd.read_csv(out / "people.csv"), pd.read_csv(reference / "people.csv"))


@pytest.mark.slow
def test_engine_ray_gives_the_single_machine_results(ray_local, inputs, single, tmp_path):
    """The documented command on a local Ray: the same files, rows, face ids and probabilities as without it."""
    out = tmp_path / "ray"
    res = run_in(inputs.parent, "analyze", "in", "--out", out, "--model", "fast", "--engine", "ray")
    assert res.exit_code == 1, res.output  # bad.jpg, as in the single-machine run
    said = " ".join(res.output.split())
    assert "2 videos analysed" in said and "7 photos analysed" in said and "1 unreadable" in said
    assert {p.name for p in single.iterdir() if p.is_file()} <= {p.name for p in out.iterdir() if p.is_file()}
    assert_same_results(out, single)  # with the paths as given: in/p0.jpg...
    assert photo_records(out)[0]["path"].startswith("in/")
    assert {"a.rows.csv", "a-1.rows.csv"} <= {p.name for p in out.iterdir()}  # two videos named a.avi
    big = next(r for r in photo_records(out) if r["path"].endswith("big.jpg"))
    assert big["num_faces"] >= 5 and len(big["detect_sides"]) > 1  # the photo detector, not the video one
    assert not [p for p in out.rglob("*") if ".part" in p.name]


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_nothing_is_lost_or_doubled(ray_local, inputs, single, tmp_path, monkeypatch):
    """One-photo jobs on 2 actors; after the first job one actor is killed while it holds queued jobs: Ray
    restarts it and runs them again, and every input appears exactly once."""
    import openfer.scale

    killed = []

    def kill_one(done, total, what):
        if not killed:
            name = next(n for n in ray_local.util.list_named_actors() if n.startswith("openfer-") and n.endswith("-0"))
            ray_local.kill(ray_local.get_actor(name), no_restart=False)
            killed.append(name)

    monkeypatch.chdir(inputs.parent)
    result = openfer.scale.analyze(["in"], tmp_path / "out", SETTINGS, workers=2, chunk=1, on_progress=kill_one)
    assert killed and not result.interrupted
    assert result.restarted_workers == 1  # Ray restarted the killed actor, which finished the jobs it held
    assert sum(w["jobs"] for w in result.workers.values()) == 9  # 7 photos, 2 videos: each job once
    assert sorted(Path(v).name for v in result.videos_done) == ["a.avi", "a.avi"]
    assert result.photos_done == 7 and result.photos_failed == 1
    assert_same_results(tmp_path / "out", single)


@pytest.mark.slow
def test_a_rerun_skips_finished_inputs_and_redoes_a_changed_one(ray_local, inputs, single, tmp_path):
    import shutil

    import openfer.scale

    root = tmp_path / "in"
    shutil.copytree(inputs, root)
    out = tmp_path / "out"
    first = openfer.scale.analyze([root], out, SETTINGS, chunk=3)
    assert len(first.videos_done) == 2 and first.photos_done == 7
    rows_time = (out / "a.rows.csv").stat().st_mtime_ns
    img, _ = scattered_heads(480, 360, 3, seed=11, lo=100, hi=140)  # p1.jpg now holds 3 faces
    cv2.imwrite(str(root / "p1.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    second = openfer.scale.analyze([root], out, SETTINGS, chunk=3)
    assert len(second.videos_skipped) == 2 and not second.videos_done
    assert second.photos_skipped == 5 and second.photos_done == 2  # p1.jpg and the unreadable bad.jpg
    assert (out / "a.rows.csv").stat().st_mtime_ns == rows_time
    recs = photo_records(out)
    assert [Path(r["path"]).name for r in recs] == [Path(r["path"]).name for r in photo_records(single)]
    assert next(r for r in recs if r["path"].endswith("p1.jpg"))["num_faces"] == 3
    faces = pd.read_csv(out / "photos.csv")
    assert (faces.path.str.endswith("p1.jpg")).sum() == 3 and not faces.duplicated(["path", "face"]).any()
    # one manifest format: the single-machine batch skips the videos the Ray run finished
    local = run_cli("analyze", root, "--out", out, "--model", "fast", "-q")
    assert local.exit_code == 1 and (out / "a.rows.csv").stat().st_mtime_ns == rows_time
    assert "photos" in json.loads((out / "manifest.json").read_text())
