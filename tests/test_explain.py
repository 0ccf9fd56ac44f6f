"""Explanations: face regions, the sentence, the saliency methods, and Adebayo et al. (2018) sanity checks."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ASTRONAUT_LANDMARKS, astronaut
from openfer.align import FER_TEMPLATE
from openfer.explain import (REGION_NAMES, explain_faces, heatmaps, occlusion_map, rank_correlation, rationale,
                             region_masks, region_shares, rise_map)
from openfer.explain.sanity import deletion_test
from openfer.types import Explanation, Face

sys.path.insert(0, str(Path(__file__).parent))
import explain_helpers as eh  # noqa: E402

TEMPLATE_48 = FER_TEMPLATE * 48


def rotate(points: np.ndarray, degrees: float, centre=(24.0, 24.0)) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return points @ m[:, :2].T + m[:, 2]


# --- regions --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("degrees", [0.0, 20.0, -30.0])
def test_regions_partition_the_crop_and_hold_their_landmarks(degrees):
    lm = rotate(TEMPLATE_48, degrees)
    masks = region_masks(lm, 48)
    assert tuple(masks) == REGION_NAMES
    assert (sum(m.astype(int) for m in masks.values()) == 1).all()  # every pixel in exactly one region
    at = lambda p: tuple(int(v) for v in p[::-1])  # noqa: E731 - (x, y) -> [row, col]
    assert masks["brows_eyes"][at(lm[0])] and masks["brows_eyes"][at(lm[1])]
    assert masks["nose"][at(lm[2])]
    assert masks["mouth_jaw"][at(lm[3])] and masks["mouth_jaw"][at(lm[4])]
    above_eyes = lm[:2].mean(0) + rotate(np.array([[0.0, -8.0]]), degrees, (0, 0))[0]  # brows, 0.45 d up
    assert masks["brows_eyes"][at(above_eyes)]


@pytest.mark.parametrize("landmarks, error", [
    (np.full((5, 2), np.nan), "finite"),
    (np.array([[10, 10], [10, 10], [20, 20], [12, 30], [18, 30]], float), "coincide"),
])
def test_regions_reject_bad_landmarks(landmarks, error):
    with pytest.raises(ValueError, match=error):
        region_masks(landmarks, 48)


def test_region_shares_count_only_positive_evidence():
    masks = region_masks(TEMPLATE_48, 48)
    hm = np.where(masks["mouth_jaw"], 3.0, -1.0)
    assert region_shares(hm, masks) == {"brows_eyes": 0.0, "nose": 0.0, "mouth_jaw": 1.0, "other": 0.0}
    assert set(region_shares(-np.ones((48, 48)), masks).values()) == {0.0}
    half = np.where(masks["nose"], 1.0, 0.0) + np.where(masks["brows_eyes"], masks["nose"].sum() / masks[
        "brows_eyes"].sum(), 0.0)
    assert region_shares(half, masks)["nose"] == pytest.approx(0.5)


# --- sentence ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shares, expected", [
    ({"brows_eyes": 0.27, "nose": 0.09, "mouth_jaw": 0.58, "other": 0.06},
     "happiness 0.91 — mostly from the mouth/jaw region (58 %); brows/eyes 27 %, nose 9 %, elsewhere 6 %."),
    ({"brows_eyes": 0.40, "nose": 0.02, "mouth_jaw": 0.30, "other": 0.28},
     "happiness 0.91 — spread out; the largest share is the brows/eyes region (40 %); mouth/jaw 30 %, elsewhere 28 %."),
    ({"brows_eyes": 0.1, "nose": 0.0, "mouth_jaw": 0.2, "other": 0.7},
     "happiness 0.91 — most evidence lies outside these regions (forehead, cheeks, hair, background) (70 %); "
     "mouth/jaw 20 %, brows/eyes 10 %."),
    ({"brows_eyes": 0.0, "nose": 0.0, "mouth_jaw": 0.0, "other": 0.0},
     "happiness 0.91 — no part of the face raised this probability measurably."),
])
def test_rationale_states_only_the_given_numbers(shares, expected):
    assert rationale("happiness", 0.912, shares) == expected


def test_rationale_percentages_come_from_the_shares():
    rng = np.random.default_rng(0)
    names = {"brows/eyes": "brows_eyes", "nose": "nose", "mouth/jaw": "mouth_jaw", "elsewhere": "other"}
    for _ in range(50):
        v = rng.dirichlet(np.ones(4))
        shares = dict(zip(REGION_NAMES, v))
        text = rationale("anger", 0.5, shares, "rise")
        assert text.endswith("[rise]")
        for label, pct in re.findall(r"(brows/eyes|nose|mouth/jaw|elsewhere)(?: region \(| )(\d+) %", text):
            assert int(pct) == round(100 * shares[names[label]])


# --- methods on a fake model whose evidence is known --------------------------------------------------------------

class SpotClassifier:
    """Two classes; p(bright) = sigmoid of the mean brightness of one 8 x 8 spot at rows 30-38, columns 20-28."""

    classes = ("dark", "bright")
    input_size = 48
    channels = 1

    def predict_proba(self, faces):
        m = np.asarray(faces, np.float64)[:, 30:38, 20:28].mean((1, 2))
        p = 1 / (1 + np.exp(-(m - 128) / 20))
        return np.stack([1 - p, p], 1).astype(np.float32)


def spot_face() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(120, 20, (48, 48))
    x[30:38, 20:28] = 200
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method, min_share", [("occlusion", 0.9), ("rise", 0.5)])  # rise: sampling noise floor
def test_model_agnostic_maps_find_the_evidence(method, min_share):
    clf, face = SpotClassifier(), spot_face()
    hm = heatmaps(clf, face[None], [1], method)[0]
    assert hm.shape == (48, 48) and hm.dtype == np.float32
    spot = np.zeros((48, 48), bool)
    spot[26:42, 16:32] = True  # the spot and half a patch around it
    pos = np.clip(hm, 0, None)
    assert pos[spot].sum() / pos.sum() > min_share  # the spot and margin are 11 % of the crop
    y, x = np.unravel_index(np.argmax(hm), hm.shape)
    assert spot[y, x]
    top, random = deletion_test(clf, face, hm, 1)
    assert top > random + 0.1


@pytest.mark.parametrize("a, b, expected", [
    ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
    ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
    ([0, 0, 0, 5], [0, 0, 0, 1], 1.0),      # shared zeros tie; the one bright pixel agrees
    ([0, 0, 1, 2], [2, 1, 0, 0], -8 / 9),   # average ranks of ties, not their positions
    ([3, 3, 3, 3], [1, 2, 3, 4], 0.0),      # a constant map carries no ranking
    ([-4, 1, 2, 3], [4, 1, 2, 3], 1.0),     # absolute values
])
def test_rank_correlation(a, b, expected):
    assert rank_correlation(np.array(a, float), np.array(b, float)) == pytest.approx(expected)


def test_rise_is_reproducible_and_seeded():
    clf, face = SpotClassifier(), spot_face()
    a, b = rise_map(clf, face, 1, n_masks=64, seed=3), rise_map(clf, face, 1, n_masks=64, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rise_map(clf, face, 1, n_masks=64, seed=4))


@pytest.mark.parametrize("kwargs, error", [
    ({"patch": 0}, "patch"), ({"patch": 49}, "patch"), ({"stride": 0}, "stride"),
])
def test_occlusion_rejects_bad_settings(kwargs, error):
    with pytest.raises(ValueError, match=error):
        occlusion_map(SpotClassifier(), spot_face(), 1, **kwargs)


def test_crop_must_be_uint8_square():
    with pytest.raises(TypeError, match="uint8"):
        occlusion_map(SpotClassifier(), spot_face().astype(np.float32), 1)
    with pytest.raises(ValueError, match="square"):
        rise_map(SpotClassifier(), spot_face()[:40], 1)


# --- the shipped ONNX models ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fast_analyzer():
    import openfer

    return openfer.Analyzer(classifier="fast")


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_explain_faces_on_the_shipped_model(fast_analyzer, method):
    img = astronaut()
    faces = fast_analyzer.detector.detect(img)
    out = explain_faces(img, faces, fast_analyzer.classifier, method, **({"n_masks": 100} if method == "rise" else {}))
    assert len(out) == len(faces) == 1 and faces[0].explanation is None  # new faces, input untouched
    f = out[0]
    e = f.explanation
    assert isinstance(e, Explanation) and e.method == method and e.target == f.expression == "happiness"
    assert e.probability == pytest.approx(f.probabilities["happiness"])
    assert sum(e.regions.values()) == pytest.approx(1.0) and sum(e.region_areas.values()) == pytest.approx(1.0)
    assert max(e.regions, key=e.regions.get) == "mouth_jaw"  # a smile: the mouth carries the evidence
    assert e.rationale.startswith(f"happiness {e.probability:.2f} — ")
    # the crop -> image transform puts the crop's landmark template back on the detected landmarks
    back = TEMPLATE_48 @ e.crop_to_image[:, :2].T + e.crop_to_image[:, 2]
    assert np.abs(back - np.array(ASTRONAUT_LANDMARKS)).max() < 4
    d = f.to_dict()
    json.dumps(d)
    assert d["explanation"]["regions"] == {k: round(v, 4) for k, v in e.regions.items()}
    assert np.array(d["explanation"]["heatmap"]).shape == (48, 48)


def test_explain_faces_target_and_errors(fast_analyzer):
    img = astronaut()
    faces = fast_analyzer.detector.detect(img)
    out = explain_faces(img, faces, fast_analyzer.classifier, "occlusion", target="sadness")
    assert out[0].explanation.target == "sadness" and out[0].expression == "happiness"
    with pytest.raises(ValueError, match="unknown class"):
        explain_faces(img, faces, fast_analyzer.classifier, "occlusion", target="joy")
    with pytest.raises(ValueError, match="unknown explanation method"):
        explain_faces(img, faces, fast_analyzer.classifier, "lime")
    with pytest.raises(TypeError, match="PyTorch model"):
        explain_faces(img, faces, fast_analyzer.classifier, "gradcam")
    assert explain_faces(img, [], fast_analyzer.classifier) == []


def test_face_without_landmarks_gets_template_regions(fast_analyzer):
    out = explain_faces(astronaut(), [Face(box=(181, 58, 270, 178), score=1.0)], fast_analyzer.classifier,
                        "occlusion")
    e = out[0].explanation
    assert e.crop_to_image[0, 2] == pytest.approx(181) and e.crop_to_image[1, 2] == pytest.approx(58)
    assert sum(e.regions.values()) == pytest.approx(1.0)


def test_shipped_model_saliency_depends_on_its_weights(fast_analyzer):
    """Model randomisation on the ONNX path: same graph, weights replaced by noise -> a different map; and the
    deletion test: covering the top-attributed square lowers the probability more than random squares."""
    import onnxruntime as ort

    from openfer.align import crop_face
    from openfer.classify import OnnxClassifier
    from openfer.zoo.registry import model_path

    clf = fast_analyzer.classifier
    rnd = OnnxClassifier(clf.spec, session=ort.InferenceSession(
        eh.randomize_onnx(model_path(clf.spec).read_bytes()), providers=["CPUExecutionProvider"]))
    img = astronaut()
    crop = crop_face(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), fast_analyzer.detector.detect(img)[0], 48)[0]
    crops = np.stack([crop, crop[:, ::-1].copy(), (crop * 0.8).astype(np.uint8)])
    target = [clf.classes.index("happiness")] * len(crops)
    for method in ("occlusion", "rise"):
        kw = {"n_masks": 150} if method == "rise" else {}
        trained, random = heatmaps(clf, crops, target, method, **kw), heatmaps(rnd, crops, target, method, **kw)
        assert np.mean([rank_correlation(a, b) for a, b in zip(trained, random)]) < 0.3
        for c, h, t in zip(crops, trained, target):
            top, rand = deletion_test(clf, c, h, t)
            assert top > rand and top > 0


# --- Adebayo et al. sanity checks on a tiny PyTorch model with known evidence -------------------------------------

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="the PyTorch sanity checks need the [train] extra")
METHODS = ["occlusion", "rise", "gradcam", "gradcam++"]


@pytest.fixture(scope="module")
def tiny():
    """Models trained inside the test (seconds): two seeds on true labels, one on shuffled labels, one untrained."""
    pytest.importorskip("torch", reason="the PyTorch sanity checks need the [train] extra")
    good = eh.train_tiny(seed=0)
    return {"good": good, "good_seed5": eh.train_tiny(seed=5), "shuffled": eh.train_tiny(labels_shuffled=True),
            "random": eh.randomized_copy(good)}


@pytest.fixture(scope="module")
def tiny_maps(tiny):
    x, y = eh.make_data(12, seed=99)
    maps = {(name, m): heatmaps(clf, x, list(y), m) for name, clf in tiny.items() for m in METHODS}
    return x, y, maps


def test_tiny_models_learnt_what_they_should(tiny):
    x, y = eh.make_data(200, seed=7)
    assert (tiny["good"].predict_proba(x).argmax(1) == y).mean() > 0.95
    assert (tiny["shuffled"].predict_proba(x).argmax(1) == y).mean() < 0.7


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_saliency_points_at_the_evidence(tiny_maps, method):
    _, _, maps = tiny_maps
    near = cv2.dilate(eh.evidence_mask().astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    pos = np.clip(maps[("good", method)], 0, None)
    share = (pos[:, near].sum(1) / pos.reshape(len(pos), -1).sum(1)).mean()
    assert share > 1.8 * near.mean()  # at least 1.8x more evidence than the region's area would get by chance


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("other", ["random", "shuffled"])
def test_saliency_changes_with_randomised_weights_and_shuffled_labels(tiny_maps, method, other):
    """Adebayo et al. 2018: a map that survives weight randomisation or label shuffling does not explain the
    model. Reference: two trainings with different seeds agree closely (rank correlation about 0.9 or more)."""
    _, _, maps = tiny_maps
    corr = lambda a, b: np.mean([rank_correlation(p, q) for p, q in zip(maps[a], maps[b])])  # noqa: E731
    same = corr(("good", method), ("good_seed5", method))
    changed = corr(("good", method), (other, method))
    assert same > 0.8
    assert changed < 0.6 and changed < same - 0.3


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_deletion_of_top_region_hurts_more_than_random(tiny, tiny_maps, method):
    x, y, maps = tiny_maps
    drops = np.array([deletion_test(tiny["good"], c, h, int(t)) for c, h, t in zip(x, maps[("good", method)], y)])
    assert drops[:, 0].mean() > drops[:, 1].mean() + 0.1
    assert (drops[:, 0] > drops[:, 1]).mean() >= 0.9


@pytest.mark.slow
def test_onnx_path_gives_the_same_maps_as_pytorch(tiny, tiny_maps):
    """The model-agnostic methods see an exported ONNX model exactly as its PyTorch original."""
    x, y, maps = tiny_maps
    onnx_clf = eh.to_onnx_classifier(tiny["good"])
    for method in ("occlusion", "rise"):
        np.testing.assert_allclose(heatmaps(onnx_clf, x, list(y), method), maps[("good", method)], atol=2e-3)


@needs_torch
@pytest.mark.parametrize("name", ["fast", "default", "fer2013"])
def test_shipped_onnx_models_run_in_pytorch(name):
    """``from_onnx`` reproduces ONNX Runtime's probabilities, and Grad-CAM finds one map per network and view.

    ``default`` has int8 convolutions: the interpreter reproduces its quantize/dequantize steps in float, and a
    pixel value that lands on a rounding boundary after the crops' normalisation round trip can move one
    quantization step, so its tolerance is wider (the label must not change)."""
    import openfer
    from openfer.explain import TorchClassifier
    from openfer.explain.gradcam import cam_layers

    onnx_clf = openfer.load_classifier(name)
    twin = TorchClassifier.from_onnx(onnx_clf)
    x = np.random.default_rng(0).integers(0, 256, (6, 48, 48)).astype(np.uint8)
    p_twin, p_onnx = twin.predict_proba(x), onnx_clf.predict_proba(x)
    np.testing.assert_allclose(p_twin, p_onnx, atol=0.05 if name == "default" else 1e-5)
    assert (p_twin.argmax(1) == p_onnx.argmax(1)).all()
    # with the balanced prior, the twin re-weights as the ONNX classifier does (same probabilities, same labels)
    balanced = openfer.load_classifier(name, prior="balanced")
    p_bal = TorchClassifier.from_onnx(balanced).predict_proba(x)
    np.testing.assert_allclose(p_bal, balanced.predict_proba(x), atol=0.05 if name == "default" else 1e-5)
    assert not np.allclose(p_bal, p_twin, atol=1e-3)
    layers = cam_layers(twin)
    from openfer.train.combine import network_count
    from openfer.zoo.registry import get_spec, model_path

    members = network_count(model_path(get_spec(name)))  # default and fer2013: 3 networks
    assert members == {"fast": 1, "fer2013": 3, "default": 3}[name]
    assert len(layers) == 2 * members and sum(m for _, _, m in layers) == members  # mirror view of each


@needs_torch
def test_gradcam_of_mirrored_view_is_flipped_back():
    """A face and its mirror image get mirror-image Grad-CAM maps (the flip-TTA branch is undone)."""
    import openfer
    from openfer.align import crop_face
    from openfer.explain import TorchClassifier
    from openfer.explain.gradcam import gradcam_maps

    twin = TorchClassifier.from_onnx(openfer.load_classifier("fast"))
    img = astronaut()
    crop = crop_face(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), openfer.Analyzer().detector.detect(img)[0], 48)[0]
    a, b = gradcam_maps(twin, np.stack([crop, crop[:, ::-1].copy()]), [1, 1])
    np.testing.assert_allclose(a, b[:, ::-1], atol=1e-4)


def test_gradcam_layer_choice_and_errors(tiny):
    from openfer.explain.gradcam import default_layer, gradcam_maps

    net = tiny["good"].net
    assert default_layer(net, 32, 1) == "7"  # the last ReLU, 8 x 8
    x, y = eh.make_data(2, seed=3)
    a = gradcam_maps(tiny["good"], x, list(y), layer="4")  # the 16 x 16 ReLU
    assert a.shape == (2, 32, 32) and 0 <= a.min() and a.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no layer named"):
        gradcam_maps(tiny["good"], x, list(y), layer="nope")


@needs_torch
def test_torch_checkpoint_round_trip(tmp_path):
    """A best.pt in the format of ``openfer train`` loads and explains (fer_resnet at width 0.25, untrained)."""
    import torch

    from openfer.explain import TorchClassifier
    from openfer.nn.archs import build

    net = build("fer_resnet", 8, width=0.25)
    ck = {"ema": net.state_dict(), "classes": list(eh_classes()), "temperature": 1.5,
          "config": {"arch": "fer_resnet", "arch_kwargs": {"width": 0.25}, "input_size": 48, "in_chans": 1}}
    torch.save(ck, tmp_path / "best.pt")
    clf = TorchClassifier.from_checkpoint(tmp_path / "best.pt")
    assert clf.classes == eh_classes() and clf.temperature == 1.5
    img = astronaut()
    face = Face(box=(181, 58, 270, 178), score=1.0, landmarks=np.array(ASTRONAUT_LANDMARKS))
    for method in ("gradcam", "gradcam++"):
        e = explain_faces(img, [face], clf, method)[0].explanation
        assert e.heatmap.shape == (48, 48) and e.heatmap.max() <= 1.0 + 1e-6
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        TorchClassifier.from_checkpoint(tmp_path / "missing.pt")


def eh_classes() -> tuple[str, ...]:
    from conftest import CLASSES

    return CLASSES


# --- regions from the geometry stage's 478-point mesh ---------------------------------------------------------------

def synthetic_mesh(size: int = 48) -> np.ndarray:
    """A [478, 3] mesh in crop pixels with only the points ``MESH_GROUPS`` uses placed, around the template's
    eyes, nose and mouth (every other point sits at the nose tip)."""
    from openfer.explain.regions import MESH_GROUPS

    t = TEMPLATE_48 * size / 48
    mesh = np.zeros((478, 3))
    mesh[:, :2] = t[2]
    ring = lambda c, r, n: c + r * np.stack([np.cos(np.linspace(0, 2 * np.pi, n)), np.sin(np.linspace(0, 2 * np.pi, n))], 1)  # noqa: E731
    for side, eye in zip(MESH_GROUPS["brows_eyes"], t[:2]):
        mesh[list(side), :2] = ring(eye - [0, 2], 4, len(side))  # eye and brow around the eye
    nose = MESH_GROUPS["nose"][0]
    mesh[list(nose), :2] = ring(t[2] - [0, 3], 3, len(nose))
    mouth = MESH_GROUPS["mouth_jaw"][0]
    mesh[list(mouth), :2] = ring((t[3] + t[4]) / 2 + [0, 4], 7, len(mouth))
    return mesh


def test_mesh_regions_partition_the_crop_and_hold_their_features():
    from openfer.explain.regions import mesh_region_masks

    masks = mesh_region_masks(synthetic_mesh(), 48)
    assert tuple(masks) == REGION_NAMES
    assert (sum(m.astype(int) for m in masks.values()) == 1).all()
    at = lambda p: tuple(int(v) for v in np.asarray(p)[::-1])  # noqa: E731
    assert masks["brows_eyes"][at(TEMPLATE_48[0])] and masks["brows_eyes"][at(TEMPLATE_48[1])]
    assert masks["nose"][at(TEMPLATE_48[2] - [0, 3])]
    assert masks["mouth_jaw"][at((TEMPLATE_48[3] + TEMPLATE_48[4]) / 2)]
    with pytest.raises(ValueError, match="478"):
        mesh_region_masks(np.zeros((68, 2)), 48)


def test_explain_faces_uses_the_mesh_when_geometry_is_there(fast_analyzer):
    import dataclasses

    from openfer.align import crop_face
    from openfer.types import Geometry

    img = astronaut()
    face = fast_analyzer.detector.detect(img)[0]
    _, inv = crop_face(img, face, 48)
    mesh = synthetic_mesh()
    mesh[:, :2] = mesh[:, :2] @ inv[:, :2].T + inv[:, 2]  # crop -> image pixels, as the geometry stage gives
    geo = Geometry(landmarks=mesh, pose=(0.0, 0.0, 0.0), translation=(0.0, 0.0, 500.0), gaze=np.zeros((2, 3)),
                   gaze_angle=(0.0, 0.0), blendshapes={}, au_proxies={}, quality={}, sharpness=100.0)
    plain, meshed = explain_faces(img, [face, dataclasses.replace(face, geometry=geo)], fast_analyzer.classifier)
    assert plain.explanation.regions_from == "landmarks" and meshed.explanation.regions_from == "mesh"
    assert meshed.geometry is geo  # the face keeps what earlier stages measured
    assert meshed.explanation.region_areas != plain.explanation.region_areas
    assert sum(meshed.explanation.regions.values()) == pytest.approx(1.0)
    assert meshed.to_dict()["explanation"]["regions_from"] == "mesh"


def test_regions_from_the_real_face_mesh(fast_analyzer):
    """With MediaPipe and the Face Landmarker file (../shared/models or OPENFER_MODEL_DIR), the smile's evidence
    lands in the mesh's mouth/jaw region too."""
    pytest.importorskip("mediapipe", reason="the face mesh needs the [geometry] extra")
    import os

    from openfer.geometry import GeometryEstimator

    model_dir = Path(os.environ.get("OPENFER_MODEL_DIR", Path(__file__).resolve().parents[1] / "../shared/models"))
    if not (model_dir / "face_landmarker.task").exists():
        pytest.skip(f"face_landmarker.task not found in {model_dir} (openfer models fetch face-landmarker)")
    import openfer

    analyzer = openfer.Analyzer(classifier="fast", geometry=GeometryEstimator(model_dir=model_dir))
    e = analyzer.explain(astronaut(), "occlusion")[0].explanation
    assert e.regions_from == "mesh" and max(e.regions, key=e.regions.get) == "mouth_jaw"
