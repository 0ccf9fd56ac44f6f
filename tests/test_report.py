"""Session reports (issue 16 item 1): the numbers from rows, the self-contained HTML, the CLI on videos and rows."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import moving_faces_video
from openfer.cli import app
from openfer.io.rows import row_columns
from openfer.report.html import session_html
from openfer.report.session import CIRCUMPLEX, summarize_rows, valence_arousal

CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FPS = 10.0


def _rows(plan: dict[int, list[str | None]], n: int, strength: float = 0.9) -> pd.DataFrame:
    """Rows of ``n`` frames at ``FPS``: person -> per frame the top expression (None: absent); a frame nobody is
    in gets a success=0 row. The top class has ``strength``, the rest is spread evenly."""
    out = []
    for i in range(n):
        present = [(fid, plan[fid][i]) for fid in plan if plan[fid][i] is not None]
        if not present:
            row = dict.fromkeys(row_columns(CLASSES))
            row.update(frame=i + 1, timestamp=i / FPS, face_id=-1, confidence=0.0, success=0)
            out.append(row)
        for fid, expr in present:
            row = dict.fromkeys(row_columns(CLASSES))
            row.update(frame=i + 1, timestamp=i / FPS, face_id=fid, confidence=0.9 + 0.001 * (i % 7), success=1,
                       x1=10.0, y1=10.0, x2=60.0, y2=60.0, expression=expr)
            row.update({f"p_{c}": (strength if c == expr else (1 - strength) / (len(CLASSES) - 1)) for c in CLASSES})
            out.append(row)
    return pd.DataFrame(out)


def test_numbers_of_a_known_session():
    """Time shares, episodes (a 0.2 s flicker absorbed, a 3 s absence splitting), valence sign, coverage."""
    n = 100  # 10 s
    p0 = ["happiness"] * 30 + ["anger"] * 2 + ["happiness"] * 18 + ["sadness"] * 50
    p1 = ["neutral"] * 20 + [None] * 30 + ["neutral"] * 30 + [None] * 20
    s = summarize_rows(_rows({0: p0, 1: p1}, n), name="known")
    assert s.frames == n and s.frame_step_s == pytest.approx(0.1) and s.duration_s == pytest.approx(10.0)
    assert s.no_face_share == 0  # person 0 is always there
    a, b = s.people  # longest on screen first
    assert a.face_id == 0 and a.seconds == pytest.approx(10.0) and a.dominant in ("happiness", "sadness")
    assert a.share["happiness"] == pytest.approx(0.48) and a.share["anger"] == pytest.approx(0.02)
    assert [e.expression for e in a.episodes] == ["happiness", "sadness"]  # the anger flicker is no episode
    assert a.episodes[0].end_s == pytest.approx(5.0) and a.episodes[1].start_s == pytest.approx(5.0)
    assert {e.expression for e in a.notable} == {"happiness", "sadness"}
    assert b.face_id == 1 and b.seconds == pytest.approx(5.0) and b.dominant == "neutral"
    assert [(e.start_s, e.end_s) for e in b.episodes] == [pytest.approx((0.0, 2.0)), pytest.approx((5.0, 8.0))]
    assert b.notable == () and abs(b.valence) < 0.05  # neutral sits at the centre (the 10 % rest spreads out)
    assert a.low_confidence_share == 0 and b.low_confidence_share == 0


def test_valence_and_arousal_follow_the_circumplex():
    eye = np.eye(len(CLASSES))
    v, a = valence_arousal(eye, CLASSES)
    by = dict(zip(CLASSES, zip(v, a)))
    assert by["neutral"] == (0, 0)
    assert by["happiness"][0] > 0.9 and by["sadness"][0] < 0 and by["sadness"][1] < 0
    assert by["surprise"][1] == pytest.approx(1) and by["anger"][0] < 0 < by["anger"][1]
    assert set(CIRCUMPLEX) == set(CLASSES) - {"neutral"}


def test_low_confidence_and_no_face_time():
    s = summarize_rows(_rows({0: ["fear"] * 10 + [None] * 10}, 20, strength=0.4), name="weak")
    assert s.no_face_share == pytest.approx(0.5) and s.people[0].low_confidence_share == 1.0


def test_rows_without_probabilities_are_refused():
    with pytest.raises(ValueError, match="not an openfer rows file"):
        summarize_rows(pd.DataFrame({"frame": [1], "timestamp": [0.0]}))


def test_html_is_self_contained_and_says_what_it_measures():
    rows = _rows({0: ["happiness"] * 20 + ["surprise"] * 20}, 40)
    page = session_html(summarize_rows(rows, name="<script>x</script>.mp4"), rows)
    assert "apparent facial expressions" in page and "not a diagnosis" in page and "derived" in page
    assert "<script>x" not in page and "&lt;script&gt;" in page  # names are escaped
    assert not re.search(r"(src|href)=['\"]https?:", page) and "<script" not in page  # opens offline, no scripts
    assert page.count("data:image/png;base64,") == 1  # one timeline per person


@pytest.fixture(scope="module")
def session_video(tmp_path_factory):
    """A 6 s video: person A all along, person B from 2 s to 6 s."""
    path = tmp_path_factory.mktemp("session") / "lesson.avi"
    n = 180
    moving_faces_video(path, {0: [(30 + i // 3, 50, 90) for i in range(n)],
                              1: [None] * 60 + [(200, 70, 80)] * (n - 60)})
    return path


def test_cli_reports_videos_and_keeps_going_after_a_bad_one(session_video, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "reports"
    res = CliRunner().invoke(app, ["report", str(session_video), str(bad), "--out", str(out), "-q"])
    assert res.exit_code == 1, res.output  # one failed, the other reported
    page = (out / "lesson.html").read_text()
    assert page.count("<section class='person'>") == 2
    assert page.count("data:image/jpeg;base64,") >= 2  # a face thumbnail per person from the video
    people = pd.read_csv(out / "people.csv")
    assert len(people) == 2 and set(people.session) == {"lesson.avi"}
    assert people.seconds.max() == pytest.approx(6.0, abs=0.2) and people.seconds.min() == pytest.approx(4.0, abs=0.3)
    index = (out / "index.html").read_text()
    assert "lesson.html" in index and "broken.mp4" in index and "failed" in index
    assert (out / "lesson.rows.csv").is_file()
    # the rows again, without analysing: the same numbers, thumbnails from --video
    again = tmp_path / "again"
    res = CliRunner().invoke(app, ["report", str(out / "lesson.rows.csv"), "--video", str(session_video),
                                   "--out", str(again), "-q"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(again / "lesson.rows.people.csv").drop(columns="session").equals(
        pd.read_csv(out / "lesson.people.csv").drop(columns="session"))


@pytest.mark.parametrize("args, needle", [
    (["notes.txt"], "give videos"),
    (["missing.mp4"], "not found"),
    (["a.csv", "b.csv", "--video", "v.mp4"], "exactly one rows file"),
])
def test_cli_report_usage_errors(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    for name in ("notes.txt", "a.csv", "b.csv"):
        (tmp_path / name).write_text("x")
    res = CliRunner().invoke(app, ["report", *args, "--out", "rep"])
    assert res.exit_code == 2 and needle in " ".join(res.output.split()), res.output


@pytest.mark.slow
def test_report_renders_in_a_browser(session_video, tmp_path):
    """The page opens from disk in Chromium with every image decoded (screenshot kept with OPENFER_SCREENSHOTS)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install -e '.[dev]'")
    chromium = os.environ.get("OPENFER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("needs Chromium: apt-get install -y chromium")
    out = tmp_path / "rep"
    assert CliRunner().invoke(app, ["report", str(session_video), "--out", str(out), "-q"]).exit_code == 0
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.goto((out / "lesson.html").as_uri())
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
        assert len(widths) >= 4 and all(w > 0 for w in widths)
        assert page.locator("h2").count() == 2
        shot = page.screenshot(full_page=True)
        browser.close()
    assert len(shot) > 50_000
    if os.environ.get("OPENFER_SCREENSHOTS"):
        Path(os.environ["OPENFER_SCREENSHOTS"], "report.png").write_bytes(shot)


def test_groups_are_compared_with_intervals_and_a_rank_test(tmp_path):
    """Issue 16 item 3: five sessions of a mostly happy group against five of a mostly sad one."""
    rng = np.random.default_rng(0)
    inputs, lines = [], ["video,group"]
    for i in range(10):
        group = "calm" if i < 5 else "tense"
        main = "happiness" if group == "calm" else "sadness"
        k = int(rng.integers(25, 35))
        plan = {0: [main] * k + ["neutral"] * (40 - k)}
        path = tmp_path / f"s{i}.csv"
        _rows(plan, 40).to_csv(path, index=False)
        inputs.append(str(path))
        lines.append(f"s{i}.csv,{group}" if i % 2 else f"s{i},{group}")  # file name or stem
    (tmp_path / "groups.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["report", *inputs, "--groups", str(tmp_path / "groups.csv"), "--out", str(out),
                                   "-q"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "groups.csv")
    happy = table[table.measure == "share_happiness"].set_index("group")
    assert happy.loc["calm", "n"] == 5 and happy.loc["calm", "mean"] > 0.6 > happy.loc["tense", "mean"] == 0
    assert happy.loc["calm", "ci95_low"] < happy.loc["calm", "mean"] < happy.loc["calm", "ci95_high"]
    assert happy.loc["calm", "test"] == "Mann-Whitney U" and happy.loc["calm", "p"] < 0.01
    valence = table[table.measure == "valence_derived"].set_index("group")["mean"]
    assert valence["calm"] > 0 > valence["tense"]
    page = (out / "groups.html").read_text()
    assert "not corrected for the" in page and "data:image/png;base64," in page


def test_a_broken_groups_file_stops_before_any_work(tmp_path):
    rows = tmp_path / "s.csv"
    _rows({0: ["happiness"] * 5}, 5).to_csv(rows, index=False)
    (tmp_path / "g.csv").write_text("session,condition\ns.csv,a\n")
    res = CliRunner().invoke(app, ["report", str(rows), "--groups", str(tmp_path / "g.csv"), "--out",
                                   str(tmp_path / "rep")])
    assert res.exit_code == 2 and "needs the columns video,group" in " ".join(res.output.split())
    assert not (tmp_path / "rep").exists()


def _with_geometry(rows: pd.DataFrame, turned: list[bool], position=(300.0, -100.0, 900.0)) -> pd.DataFrame:
    """``rows`` (one person) with OpenFace pose and gaze columns: a head at ``position`` (mm, off the optical axis)
    looking into the lens, or with head and eyes turned 40° (yaw, relative to the line of sight) where ``turned``."""
    from openfer.geometry.pose import euler_xyz, line_of_sight_rotation, rotation_xyz

    sight = line_of_sight_rotation(position)
    rows = rows.copy()
    for i, t in enumerate(turned):
        rot = sight @ rotation_xyz(0.0, np.radians(40.0 if t else 0.0), 0.0)
        gaze = rot @ np.array([0.0, 0.0, -1.0])
        rx, ry, rz = euler_xyz(rot)
        rows.loc[i, ["pose_Rx", "pose_Ry", "pose_Rz", "pose_Tx", "pose_Ty", "pose_Tz"]] = [rx, ry, rz, *position]
        rows.loc[i, ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z"]] = [*gaze, *gaze]
    return rows


def test_head_pose_and_gaze_shares_are_measured_from_the_line_to_the_camera():
    """A head at the edge of the frame looking into the lens faces the camera (not the optical axis); frames
    without geometry (NaN) are left out of the shares; rows without geometry columns give no attention."""
    from openfer.report.build import people_table
    from openfer.report.session import FACING_DEG

    rows = _rows({0: ["neutral"] * 20}, 20)
    plain = summarize_rows(rows)
    assert plain.people[0].attention is None and "Head pointed" not in session_html(plain, rows)
    geo = _with_geometry(rows, [False] * 8 + [True] * 10)  # frames 19-20 keep NaN geometry
    a = summarize_rows(geo).people[0].attention
    assert a.frames == 18 and a.facing_share == pytest.approx(8 / 18) and a.gaze_share == pytest.approx(8 / 18)
    assert a.head_angle_deg == pytest.approx(40.0, abs=0.01) and a.gaze_angle_deg == pytest.approx(40.0, abs=0.01)
    assert FACING_DEG < 40
    s = summarize_rows(geo)
    assert "Head pointed at the camera" in session_html(s, geo)
    assert people_table(s)[0]["facing_camera_share"] == pytest.approx(8 / 18, abs=1e-4)
