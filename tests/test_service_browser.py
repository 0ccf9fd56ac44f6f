"""The browser app in a real, headless Chromium (Debian's package) driven by Playwright, against `openfer serve`.

Skipped, with the reason, when Playwright or Chromium is missing (``apt-get install chromium``; ``.ci/run`` installs
it). Set ``OPENFER_CHROMIUM`` to use another Chromium binary and ``OPENFER_SCREENSHOTS`` to a folder to keep
screenshots of each step.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import (astronaut, grey_canvas, iou, mouth_covered_astronaut, moving_faces_video, paste_head, save,
                      scattered_heads)

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need Playwright: pip install -e '.[dev]'")
pytest.importorskip("fastapi", reason="the web service needs the [serve] extra")
CHROMIUM = os.environ.get("OPENFER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytest.skip("browser tests need Chromium: apt-get install -y chromium (or set OPENFER_CHROMIUM)",
                allow_module_level=True)

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: Path, api_key: str | None = None, **settings: str):
    """``openfer serve`` on a free loopback port, as a user starts it, with ``settings`` as ``OPENFER_<NAME>``
    variables; returns (process, base URL) once ready."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", **{f"OPENFER_{k.upper()}": v for k, v in settings.items()}}
    env.pop("OPENFER_API_KEY", None)
    if api_key:
        env["OPENFER_API_KEY"] = api_key
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "openfer.cli", "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    t = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() - t > 90:
            stop_server(proc)
            pytest.fail(f"openfer serve did not become ready:\n{log.read_text()}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, url = start_server(tmp_path_factory.mktemp("server") / "serve.log")
    try:
        yield url
    finally:
        stop_server(proc)


def browser(tmp_path: Path, extra_args: list[str] = (), **context):
    """A fresh headless Chromium profile (persistent context in an empty user-data dir)."""
    pw = sync_api.sync_playwright().start()
    ctx = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
                                                args=[*ARGS, *extra_args], **context)
    ctx.set_default_timeout(60_000)
    return pw, ctx


def open_app(ctx, server: str, errors: list[str] | None = None):
    """The app's page in ``ctx``, loaded and its script started; page errors are appended to ``errors``."""
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    if errors is not None:
        page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready=true]")
    return page


def shot(page, name: str) -> None:
    folder = os.environ.get("OPENFER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Frames (RGB, even sizes) as a YUV4MPEG2 4:2:0 file, the format Chromium's fake camera plays."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def test_photo_upload_shows_overlay_and_results(server, tmp_path):
    photo = save(tmp_path / "astronaut.jpg", astronaut())
    pw, ctx = browser(tmp_path)
    try:
        errors: list[str] = []
        page = open_app(ctx, server, errors)
        assert page.get_by_role("tab", name="Photo").get_attribute("aria-selected") == "true"
        page.set_input_files("#photo-input", str(photo))
        page.wait_for_selector("#photo-faces li")
        status = page.inner_text("#photo-status")
        assert status.startswith("1 face found"), status
        items = page.locator("#photo-faces li")
        assert items.count() == 1 and items.first.inner_text().startswith("Face 0:")
        # The overlay: the face's box, in the colour of its expression, on the face.
        probe = page.evaluate("""() => {
            const f = photoResult.faces[0], c = document.getElementById('photo-canvas');
            const box = document.querySelector('#photo-boxes .face-box');
            return {border: getComputedStyle(box).borderLeftColor, want: COLOURS[f.expression], w: c.width, h: c.height};
        }""")
        want = [int(probe["want"][i:i + 2], 16) for i in (1, 3, 5)]
        assert (probe["w"], probe["h"]) == (512, 512)
        assert probe["border"] == "rgb({}, {}, {})".format(*want), probe
        check_boxes(page, 1)
        assert not page.locator("#photo-download").is_disabled()
        shot(page, "photo")
        # A file that is not an image gets a readable error, not a broken page.
        bad = tmp_path / "notes.jpg"
        bad.write_text("not a photo")
        page.set_input_files("#photo-input", str(bad))
        page.wait_for_function("() => document.getElementById('photo-status').classList.contains('error')")
        assert "expected an image" in page.inner_text("#photo-status")
        assert errors == []
    finally:
        ctx.close()
        pw.stop()


def drawn_boxes(page) -> dict:
    """The photo's face boxes and labels as the page shows them (CSS px, relative to the displayed photo), with
    the API's boxes (image px) and the photo's displayed and natural sizes."""
    return page.evaluate("""() => {
        const c = document.getElementById('photo-canvas').getBoundingClientRect();
        const rel = (el) => { const r = el.getBoundingClientRect();
                              return [r.left - c.left, r.top - c.top, r.right - c.left, r.bottom - c.top]; };
        return {shown: [c.width, c.height], size: [photoResult.width, photoResult.height],
                api: photoResult.faces.map(f => f.box),
                boxes: [...document.querySelectorAll('#photo-boxes .face-box')].map(rel),
                labels: [...document.querySelectorAll('#photo-boxes .face-label')].map(rel),
                page_width: document.documentElement.scrollWidth};
    }""")


def check_boxes(page, n: int, tolerance: float = 2.0) -> dict:
    """Assert the page shows ``n`` boxes, each on its API box scaled to the displayed photo (within ``tolerance``
    CSS px), with every label inside the photo and no two labels overlapping."""
    d = drawn_boxes(page)
    sx, sy = d["shown"][0] / d["size"][0], d["shown"][1] / d["size"][1]
    assert len(d["api"]) == len(d["boxes"]) == len(d["labels"]) == n, d
    for api, box in zip(d["api"], d["boxes"]):
        want = [api[0] * sx, api[1] * sy, api[2] * sx, api[3] * sy]
        assert max(abs(a - b) for a, b in zip(box, want)) <= tolerance, (box, want, d)
    for i, a in enumerate(d["labels"]):
        assert a[0] >= -0.5 and a[1] >= -0.5 and a[2] <= d["shown"][0] + 0.5 and a[3] <= d["shown"][1] + 0.5, d
        for b in d["labels"][:i]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b, d)
    return d


def upload_photo(page, photo: Path, n: int) -> None:
    """Analyse ``photo`` in the page and wait for its ``n`` faces to be listed."""
    page.set_input_files("#photo-input", str(photo))
    page.wait_for_function(f"() => document.querySelectorAll('#photo-faces li').length === {n}")
    status = page.inner_text("#photo-status")
    assert status.startswith(f"{n} face{'s' if n > 1 else ''} found"), status


def test_a_covered_mouth_is_named_with_a_damage_probe(tmp_path):
    """A service run with `default-soft` tells the user why an answer is softer: the face list says "mouth covered"
    for the astronaut with a grey band over mouth and jaw, and the JSON has the probe's kinds."""
    photo = save(tmp_path / "covered.png", mouth_covered_astronaut())
    proc, url = start_server(tmp_path / "serve.log", model="default-soft")
    pw, ctx = browser(tmp_path)
    try:
        page = open_app(ctx, url)
        page.set_input_files("#photo-input", str(photo))
        page.wait_for_selector("#photo-faces li")
        assert "mouth covered" in page.inner_text("#photo-faces li strong")
        assert page.evaluate("() => photoResult.faces[0].damage.mouth") > 0.5
    finally:
        ctx.close()
        pw.stop()
        stop_server(proc)


@pytest.mark.parametrize("name, viewport", [("desktop", {"width": 1280, "height": 900}),
                                            ("phone", {"width": 390, "height": 844})])
def test_photo_boxes_land_on_faces_at_any_size(server, tmp_path, name, viewport):
    # A 1280 px photo and a 1600 px group photo: wider than 640 px, where the boxes were once scaled twice.
    wide = save(tmp_path / "wide.jpg", cv2.resize(astronaut(), (1280, 1280), interpolation=cv2.INTER_CUBIC))
    group, truth = scattered_heads(1600, 1000, 8, lo=200, hi=240)
    group_path = save(tmp_path / "group.jpg", group)
    phone = dict(device_scale_factor=2, is_mobile=True, has_touch=True) if name == "phone" else {}
    pw, ctx = browser(tmp_path, viewport=viewport, **phone)
    try:
        errors: list[str] = []
        page = open_app(ctx, server, errors)
        upload_photo(page, wide, 1)
        d = check_boxes(page, 1)
        assert d["size"] == [1280, 1280] and d["page_width"] <= viewport["width"], d
        shot(page, f"photo-1280-{name}")
        upload_photo(page, group_path, 8)
        d = check_boxes(page, 8)
        assert d["shown"][0] <= viewport["width"] and d["page_width"] <= viewport["width"], d
        # The API's boxes are on the pasted faces, so the drawn boxes are too.
        for want in truth:
            assert max(iou(want, got) for got in d["api"]) > 0.5, (want, d["api"])
        shot(page, f"photo-group-{name}")
        assert errors == []
    finally:
        ctx.close()
        pw.stop()


def test_keyboard_and_phone_layout(server, tmp_path):
    pw, ctx = browser(tmp_path, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                      has_touch=True)
    try:
        page = open_app(ctx, server)
        page.get_by_role("tab", name="Photo").focus()
        page.keyboard.press("ArrowRight")
        assert page.get_by_role("tab", name="Video").get_attribute("aria-selected") == "true"
        assert page.locator("#panel-video").is_visible() and not page.locator("#panel-photo").is_visible()
        page.keyboard.press("End")
        assert page.evaluate("document.activeElement.id") == "tab-live"
        # Tab from the selected tab reaches the (visually hidden) file input, and its button shows the focus ring.
        page.keyboard.press("Home")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "photo-input"
        assert page.evaluate("getComputedStyle(document.querySelector('label[for=photo-input]')).outlineStyle") == "solid"
        # Every form control has a label, and nothing is wider than the phone's screen.
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select')]
            .filter(el => !el.labels || el.labels.length === 0).map(el => el.id)""")
        assert unlabelled == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, "phone")
    finally:
        ctx.close()
        pw.stop()


def test_video_upload_progress_chart_and_delete(server, tmp_path):
    video = tmp_path / "clip.avi"
    moving_faces_video(video, {0: [(20 + 3 * i, 30, 150) for i in range(20)]})
    pw, ctx = browser(tmp_path)
    try:
        page = open_app(ctx, server)
        page.get_by_role("tab", name="Video").click()
        page.select_option("#video-fps", "")
        page.set_input_files("#video-input", str(video))
        page.wait_for_selector("#video-charts canvas[data-person='0']")
        status = page.inner_text("#video-status")
        assert status.startswith("Done: 20 frames, 20 faces, 1 person"), status
        assert "mostly" in page.get_attribute("#video-charts canvas", "aria-label")
        with page.expect_download() as dl:
            page.get_by_role("button", name="Rows (CSV)").click()
        assert Path(dl.value.path()).read_text().startswith("frame,timestamp,face_id")
        # the annotated video plays in the page (issue 16 item 5), and a click on the chart seeks it
        page.wait_for_function("() => document.getElementById('video-player').readyState >= 2", timeout=30000)
        assert page.is_visible("#video-player") and page.is_visible("#video-seek-hint")
        chart = page.locator("#video-charts canvas").first
        box = chart.bounding_box()
        chart.click(position={"x": 34 + (box["width"] - 42) * 0.5, "y": box["height"] / 2})  # the middle of the time axis
        page.wait_for_function("() => document.getElementById('video-player').currentTime > 0.2", timeout=10000)
        shot(page, "video")
        page.get_by_role("button", name="Delete job and files").click()
        page.wait_for_function("() => document.getElementById('video-status').textContent.includes('deleted')")
        page.wait_for_function("() => { const v = document.getElementById('video-player'); "
                               "return v.hidden && !v.getAttribute('src'); }", timeout=5000)
    finally:
        ctx.close()
        pw.stop()


def test_video_with_voice_shows_the_voice_under_the_faces(server, tmp_path):
    """With "Voice too", the page draws a voice strip (speech shaded, arousal line) under the people's charts, says
    how much of the time has speech, and clicking it seeks the video like the face charts."""
    pytest.importorskip("silero_vad", reason="the voice needs the [audio] extra")
    from conftest import video_with_sound
    from openfer.audio import synth

    talk, _ = synth.speech(synth.CALM, 3, seed=1)
    video = tmp_path / "talk.mp4"
    video_with_sound(video, np.concatenate([np.zeros(16000 * 2, np.float32), talk[: 16000 * 2]]), seconds=4)
    pw, ctx = browser(tmp_path)
    try:
        page = open_app(ctx, server)
        page.get_by_role("tab", name="Video").click()
        page.check("#video-audio")
        page.set_input_files("#video-input", str(video))
        page.wait_for_selector("#video-charts canvas[data-person='voice']", timeout=120000)
        label = page.get_attribute("#video-charts canvas[data-person='voice']", "aria-label")
        share = float(label.split("speech in ")[1].split("\u00a0%")[0])
        assert 20 <= share <= 70, label  # speech in the second half of a 4 s clip only
        assert page.locator("#video-charts canvas[data-person='0']").count() == 1  # the face chart is still there
        # the strip is not blank: speech shading somewhere in its right half, none at its left edge
        colours = page.evaluate("""() => {
            const c = document.querySelector("#video-charts canvas[data-person='voice']");
            const ctx = c.getContext("2d"), y = Math.round(c.height / 3);
            const at = (f) => Array.from(ctx.getImageData(Math.round(c.width * f), y, 1, 1).data.slice(0, 3));
            return {left: at(0.1), right: at(0.8)};
        }""")
        speech = [0xCF, 0xE3, 0xF5]
        assert colours["left"] != speech and colours["right"] == speech, colours
        page.wait_for_function("() => document.getElementById('video-player').readyState >= 2", timeout=30000)
        strip = page.locator("#video-charts canvas[data-person='voice']")
        box = strip.bounding_box()
        strip.click(position={"x": 34 + (box["width"] - 42) * 0.75, "y": box["height"] / 2})
        page.wait_for_function("() => document.getElementById('video-player').currentTime > 1.5", timeout=10000)
        shot(page, "video-voice")
    finally:
        ctx.close()
        pw.stop()


def test_live_webcam_streams_results(server, tmp_path):
    frames = []
    # The astronaut's head gliding right and back over a grey room, 6 s at 10 fps; the fake camera loops the file,
    # and going back and forth keeps the motion continuous, so one person keeps one id however slow the server is.
    for i in [*range(30), *range(29, -1, -1)]:
        canvas = grey_canvas(640, 480)
        paste_head(canvas, 240, 80 + 8 * i, 100)
        frames.append(canvas)
    clip = write_y4m(tmp_path / "clip.y4m", frames)
    pw, ctx = browser(tmp_path, ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                 f"--use-file-for-fake-video-capture={clip}"])
    try:
        errors: list[str] = []
        page = open_app(ctx, server, errors)
        page.get_by_role("tab", name="Live webcam").click()
        page.get_by_role("button", name="Start camera").click()
        page.wait_for_function("() => live.received >= 8", timeout=90_000)
        faces = page.evaluate("live.log.map(e => e.faces.map(f => f.face_id))")
        with_face = [ids for ids in faces if ids]
        assert len(with_face) >= 0.8 * len(faces), faces
        assert {i for ids in with_face for i in ids} == {0}, faces  # one person, one stable id
        assert page.locator("#live-faces li").first.inner_text().startswith("Person 0:")
        assert page.inner_text("#live-status") == "Live: analysing your camera."
        assert "frames/s" in page.inner_text("#live-stats")
        # The overlay over the video: the latest face's box, at its place on the shown video.
        drawn = page.wait_for_function("""() => { if (!live.lastFaces.length) return null;
            const v = document.getElementById('live-video').getBoundingClientRect();
            const b = document.querySelector('#live-boxes .face-box').getBoundingClientRect();
            const f = live.lastFaces[0], s = v.width / live.lastSize[0];
            return [b.left - v.left - f.box[0] * s, b.right - v.left - f.box[2] * s]; }""").json_value()
        assert max(map(abs, drawn)) <= 2, drawn
        page.wait_for_selector("#live-charts canvas[data-person='0']")
        shot(page, "live")
        page.get_by_role("button", name="Stop").click()
        assert page.inner_text("#live-status") == "Stopped."
        assert errors == []
    finally:
        ctx.close()
        pw.stop()


def test_api_key_is_asked_for_and_used(tmp_path):
    proc, url = start_server(tmp_path / "serve.log", api_key="letmein")
    photo = save(tmp_path / "astronaut.jpg", astronaut())
    pw, ctx = browser(tmp_path)
    try:
        page = open_app(ctx, url)
        page.set_input_files("#photo-input", str(photo))
        page.wait_for_function("() => document.getElementById('photo-status').classList.contains('error')")
        assert "API key" in page.inner_text("#photo-status")
        assert page.locator("#settings").get_attribute("open") is not None  # the key field is shown
        page.get_by_label("API key").fill("letmein")
        page.get_by_label("API key").dispatch_event("change")
        page.set_input_files("#photo-input", [])
        page.set_input_files("#photo-input", str(photo))
        page.wait_for_selector("#photo-faces li")
        assert page.inner_text("#photo-status").startswith("1 face found")
    finally:
        ctx.close()
        pw.stop()
        stop_server(proc)
