"""``POST /v1/explain``: the web service returns the same explanations as the library and the CLI."""

from __future__ import annotations

import io
import warnings

import pytest
from PIL import Image

from conftest import astronaut, chelsea

pytest.importorskip("fastapi", reason="the web service needs the [serve] extra: pip install -e '.[serve]'")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from openfer.service import ServiceConfig, create_app  # noqa: E402


def jpeg(array) -> dict:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=95)
    return {"file": ("photo.jpg", buf.getvalue(), "image/jpeg")}


@pytest.fixture(scope="module")
def fast_analyzer():
    import openfer

    return openfer.Analyzer(classifier="fast")


def test_explain_endpoint_matches_the_library(fast_analyzer):
    img = astronaut()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")  # lossless, so the library sees the same pixels
    with TestClient(create_app(ServiceConfig(), analyzer=fast_analyzer), base_url="http://127.0.0.1") as c:
        r = c.post("/v1/explain", files={"file": ("a.png", buf.getvalue(), "image/png")})
        r2 = c.post("/v1/explain?method=rise&target=neutral&heatmap=false", files=jpeg(img))
        cat = c.post("/v1/explain", files=jpeg(chelsea()))
    assert r.status_code == 200, r.text
    body = r.json()
    e = body["faces"][0]["explanation"]
    lib = fast_analyzer.explain(img, "occlusion")[0].explanation
    assert body["num_faces"] == 1 and e["method"] == "occlusion" and e["rationale"] == lib.rationale
    assert e["regions"] == {k: round(v, 4) for k, v in lib.regions.items()}
    assert len(e["heatmap"]) == 48 and len(e["heatmap"][0]) == 48
    assert r2.status_code == 200, r2.text
    e2 = r2.json()["faces"][0]["explanation"]
    assert e2["method"] == "rise" and e2["target"] == "neutral" and "heatmap" not in e2
    assert cat.status_code == 200 and cat.json()["faces"] == []


@pytest.mark.parametrize("query, files, status, message", [
    ("?method=lime", "image", 422, "unknown explanation method"),
    ("?target=joy", "image", 422, "unknown class"),
    ("", "empty", 422, "empty"),
    ("", "text", 415, "expected an image"),
])
def test_explain_endpoint_errors(fast_analyzer, query, files, status, message):
    payload = {"image": jpeg(astronaut()), "empty": {"file": ("a.jpg", b"", "image/jpeg")},
               "text": {"file": ("a.jpg", b"hello, this is text", "image/jpeg")}}[files]
    with TestClient(create_app(ServiceConfig(), analyzer=fast_analyzer), base_url="http://127.0.0.1") as c:
        r = c.post(f"/v1/explain{query}", files=payload)
    assert r.status_code == status and message in r.json()["detail"]


def test_explain_endpoint_gradcam(fast_analyzer):
    pytest.importorskip("torch", reason="Grad-CAM needs the [train] extra")
    with TestClient(create_app(ServiceConfig(), analyzer=fast_analyzer), base_url="http://127.0.0.1") as c:
        r = c.post("/v1/explain?method=gradcam&heatmap=false", files=jpeg(astronaut()))
    assert r.status_code == 200, r.text
    assert r.json()["faces"][0]["explanation"]["method"] == "gradcam"
