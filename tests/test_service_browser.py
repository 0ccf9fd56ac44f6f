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

from conftest import astronaut, grey_canvas, moving_faces_video, paste_head, save

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


def start_server(log: Path, api_key: str | None = None):
    """``openfer serve`` on a free loopback port, as a user starts it; returns (process, base URL) once ready."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
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
        assert items.count() == 1 and items.first.inner_text().startswith("Face 1:")
        # The overlay: the box's left edge on the canvas has the colour of the face's expression.
        probe = page.evaluate("""() => {
            const f = photoResult.faces[0], c = document.getElementById('photo-canvas');
            const px = c.getContext('2d').getImageData(Math.round(f.box[0]), Math.round((f.box[1] + f.box[3]) / 2), 1, 1).data;
            return {px: Array.from(px.slice(0, 3)), want: COLOURS[f.expression], w: c.width, h: c.height};
        }""")
        want = [int(probe["want"][i:i + 2], 16) for i in (1, 3, 5)]
        assert (probe["w"], probe["h"]) == (512, 512)
        assert max(abs(a - b) for a, b in zip(probe["px"], want)) <= 2, probe
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
        shot(page, "video")
        page.get_by_role("button", name="Delete job and files").click()
        page.wait_for_function("() => document.getElementById('video-status').textContent.includes('deleted')")
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
        faces = page.evaluate("live.log.map(e => e.faces.map(f => f.track_id))")
        with_face = [ids for ids in faces if ids]
        assert len(with_face) >= 0.8 * len(faces), faces
        assert {i for ids in with_face for i in ids} == {0}, faces  # one person, one stable id
        assert page.locator("#live-faces li").first.inner_text().startswith("Person 0:")
        assert page.inner_text("#live-status") == "Live: analysing your camera."
        assert "frames/s" in page.inner_text("#live-stats")
        # The overlay canvas over the video has drawn pixels (boxes and labels).
        drawn = page.evaluate("""() => { const c = document.getElementById('live-overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
        assert drawn > 500
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
