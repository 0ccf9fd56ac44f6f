"""Classifying followed faces again only when they change (openfer.track.reclassify)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import astronaut

from openfer.errors import UsageError
from openfer.track import FaceTracker
from openfer.track.reclassify import Reclassifier, appearance
from openfer.video import ArraySource, run_video

N = 12


@pytest.fixture(scope="module")
def frame_and_faces(analyzer):
    frame = astronaut()
    faces = FaceTracker().update(analyzer.detector.detect(frame), 0.0)
    assert len(faces) == 1 and faces[0].track_id is not None
    return frame, faces


def changed(frame: np.ndarray, face) -> np.ndarray:
    """``frame`` with the lower half of ``face`` painted over: a new look for the same box and landmarks."""
    out = frame.copy()
    x1, y1, x2, y2 = (int(v) for v in face.box)
    out[(y1 + y2) // 2:y2, x1:x2] = 30
    return out


@pytest.fixture
def calls(analyzer, monkeypatch):
    """Crops the model saw, per call."""
    seen: list[int] = []
    predict = analyzer._predict

    def counting(crops, embed=None):
        seen.append(len(crops))
        return predict(crops, embed)
    monkeypatch.setattr(analyzer, "_predict", counting)
    return seen


def probs(frames_out) -> list[dict]:
    return [faces[0].probabilities for faces in frames_out]


def test_an_unchanged_face_reuses_its_last_probabilities(analyzer, frame_and_faces, calls):
    frame, faces = frame_and_faces
    r = Reclassifier(analyzer, every=5)
    out = r.classify_frames([(frame, faces)] * N)
    assert sum(calls) == r.classified == 3 and r.faces == N, "classified on frames 0, 5 and 10 only"
    fresh = analyzer.classify(frame, faces)[0].probabilities
    assert probs(out) == [fresh] * N, "every frame carries exactly the last classification's probabilities"
    assert all(o[0].track_id == faces[0].track_id and o[0].box == faces[0].box for o in out)


def test_ctrl_c_during_classification_stays_an_interrupt(analyzer, frame_and_faces, monkeypatch):
    """Ctrl-C or SIGTERM while the model runs reaches the caller as KeyboardInterrupt (so the run stops and says
    so), and the next batch is classified normally. The clean-up compared entries with ==, which on their arrays
    raised ValueError: the interrupt became 'classification failed' problems and the run went on (exit 1)."""
    frame, faces = frame_and_faces
    r = Reclassifier(analyzer, every=5)
    predict = analyzer._predict

    def interrupted(crops, embed=None):
        monkeypatch.setattr(analyzer, "_predict", predict)
        raise KeyboardInterrupt

    from dataclasses import replace

    r.classify_frames([(frame, faces)] * 2)  # a track with a last classification, kept through the interrupt
    newcomer = [replace(faces[0], track_id=faces[0].track_id + 1)]
    monkeypatch.setattr(analyzer, "_predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        r.classify_frames([(frame, newcomer)])
    out = r.classify_frames([(frame, faces + newcomer)] * 3)
    assert all(o[0].probabilities and o[1].probabilities for o in out)


def test_a_face_that_changes_is_classified_again_at_once(analyzer, frame_and_faces, calls):
    frame, faces = frame_and_faces
    other = changed(frame, faces[0])
    assert np.abs(appearance(analyzer._crops(other, faces)[0]) - appearance(analyzer._crops(frame, faces)[0])).mean() \
        > 0.15
    before, after = analyzer.classify(frame, faces)[0].probabilities, analyzer.classify(other, faces)[0].probabilities
    assert before != after
    r = Reclassifier(analyzer, every=5)
    out = r.classify_frames([(frame, faces)] * 3 + [(other, faces)] * 4)
    assert probs(out) == [before] * 3 + [after] * 4
    assert r.classified == 2


def test_without_the_look_test_a_change_is_caught_within_every_frames(analyzer, frame_and_faces):
    frame, faces = frame_and_faces
    other = changed(frame, faces[0])
    before, after = analyzer.classify(frame, faces)[0].probabilities, analyzer.classify(other, faces)[0].probabilities
    r = Reclassifier(analyzer, every=4, max_change=float("inf"))
    out = r.classify_frames([(frame, faces)] * 2 + [(other, faces)] * 6)
    assert probs(out) == [before] * 4 + [after] * 4, "the change on frame 2 shows on frame 4 (= every)"


def test_batches_cut_anywhere_give_the_same_outputs(analyzer, frame_and_faces):
    frame, faces = frame_and_faces
    other = changed(frame, faces[0])
    frames = [(frame, faces)] * 4 + [(other, faces)] * 3 + [(frame, faces)] * 5
    whole = probs(Reclassifier(analyzer, every=3).classify_frames(frames))
    r = Reclassifier(analyzer, every=3)
    pieces = [p for k in range(0, N, 5) for p in probs(r.classify_frames(frames[k:k + 5]))]
    assert pieces == whole


def test_untracked_faces_and_every_1_always_classify(analyzer, frame_and_faces, calls):
    frame, faces = frame_and_faces
    r = Reclassifier(analyzer, every=5)
    r.classify_frames([(frame, analyzer.detector.detect(frame))] * 4)  # no track ids
    assert r.classified == 4
    every = Reclassifier(analyzer, every=1)
    assert probs(every.classify_frames([(frame, faces)] * 3)) == probs(analyzer.classify_frames([(frame, faces)] * 3))
    assert every.classified == 3
    with pytest.raises(UsageError):
        Reclassifier(analyzer, every=0)
    with pytest.raises(UsageError):
        Reclassifier(analyzer, max_change=-1)


def test_a_failed_model_call_leaves_nothing_half_done(analyzer, frame_and_faces, monkeypatch):
    frame, faces = frame_and_faces
    r = Reclassifier(analyzer, every=5)

    def fail(crops, embed=None):
        raise RuntimeError("model failed")
    with monkeypatch.context() as m:
        m.setattr(analyzer, "_predict", fail)
        with pytest.raises(RuntimeError):
            r.classify_frames([(frame, faces)] * 2)
    out = r.classify_frames([(frame, faces)])
    assert out[0][0].probabilities == analyzer.classify(frame, faces)[0].probabilities


def test_run_video_reclassifies_and_reports_it(analyzer):
    frames = [astronaut()] * 10
    result = run_video(analyzer, ArraySource(frames, fps=25), classify_every=5)
    assert result.summary["classify_every"] == 5 and result.summary["classified_faces"] == 2
    exact = run_video(analyzer, ArraySource(frames, fps=25), classify_every=1)
    assert exact.summary["classified_faces"] == 10


def test_defaults_agree_everywhere():
    import inspect

    from openfer import cli
    from openfer.settings import AnalysisSettings
    from openfer.track.reclassify import DEFAULT_CLASSIFY_EVERY
    for fn in (cli.analyze, run_video):
        assert inspect.signature(fn).parameters["classify_every"].default == DEFAULT_CLASSIFY_EVERY
    assert AnalysisSettings().classify_every == DEFAULT_CLASSIFY_EVERY
    assert AnalysisSettings(classify_every=1).manifest_settings()["classify_every"] == 1
    with pytest.raises(UsageError):
        AnalysisSettings(classify_every=0)


def test_cli_classify_every(tmp_path):
    """`--classify-every N` reaches the summary for a video, and is refused for photos."""
    import json

    from conftest import moving_faces_video, save
    from typer.testing import CliRunner

    from openfer.cli import app

    clip = tmp_path / "c.avi"
    moving_faces_video(clip, {0: [(40 + 2 * i, 40, 100) for i in range(12)]})
    res = CliRunner().invoke(app, ["analyze", str(clip), "--out", str(tmp_path / "r.csv"), "--classify-every", "1",
                                   "--summary", str(tmp_path / "s.json"), "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["classify_every"] == 1 and summary["classified_faces"] == 12
    photo = save(tmp_path / "a.png", astronaut())
    res = CliRunner().invoke(app, ["analyze", str(photo), "--classify-every", "3", "--jsonl", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 2 and "--classify-every" in res.output
