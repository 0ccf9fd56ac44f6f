"""The test-time corruptions: shapes, determinism, where the occluders fall, and what each does to the pixels."""

import numpy as np
import pytest

from openfer.align import FER_TEMPLATE
from openfer.corrupt import CORRUPTIONS, Corrupted, glasses, headset, lowres, mask, noise, sunglasses


def _faces(n: int = 3, side: int = 48, colour: bool = False) -> np.ndarray:
    rng = np.random.default_rng(1)
    shape = (n, side, side, 3) if colour else (n, side, side)
    return rng.integers(90, 170, shape).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("side,colour", [(48, False), (112, True)])
def test_every_corruption_keeps_shape_and_type_changes_pixels_and_is_repeatable(name, side, colour):
    x = _faces(side=side, colour=colour)
    before = x.copy()
    y = CORRUPTIONS[name](x)
    assert y.shape == x.shape and y.dtype == np.uint8
    assert np.array_equal(x, before)  # the input is left as it was
    assert np.abs(y.astype(int) - x).mean() > 1.0
    assert np.array_equal(y, CORRUPTIONS[name](x))


def _at(img: np.ndarray, xy) -> float:
    side = img.shape[0]
    return float(img[int(xy[1] * side), int(xy[0] * side)])


def test_occluders_cover_the_template_parts_they_are_named_for():
    grey = np.full((1, 96, 96), 128, np.uint8)
    eye, mouth = FER_TEMPLATE[0], FER_TEMPLATE[3:].mean(0)
    forehead, cheek = (0.5, 0.08), (0.1, 0.7)
    s = sunglasses(grey)[0]
    assert _at(s, eye) < 40 and _at(s, mouth) == 128 and _at(s, forehead) == 128
    g = glasses(grey)[0]
    assert _at(g, eye) == 128  # clear lenses: the eye itself stays visible...
    assert _at(g, (eye[0], eye[1] - 0.095)) < 100  # ...its rim does not
    h = headset(grey)[0]
    assert _at(h, eye) > 160 and _at(h, mouth) == 128 and _at(h, forehead) == 128
    m = mask(grey)[0]
    assert _at(m, mouth) > 180 and _at(m, eye) == 128 and _at(m, cheek) == 128


def test_colour_occluders_paint_their_colour_and_grey_crops_its_mean():
    rgb = mask(np.zeros((1, 64, 64, 3), np.uint8))[0]
    assert tuple(rgb[60, 32]) == (170, 200, 225)
    grey = mask(np.zeros((1, 64, 64), np.uint8))[0]
    assert grey[60, 32] == round((170 + 200 + 225) / 3)


def test_noise_and_lowres_do_what_they_say():
    flat = np.full((2, 48, 48), 128, np.uint8)
    n = noise(flat).astype(float)
    assert 12 < n.std() < 18 and abs(n.mean() - 128) < 1
    checker = (np.indices((48, 48)).sum(0) % 2 * 255).astype(np.uint8)[None]
    assert np.abs(lowres(checker).astype(int) - 128).max() <= 2  # detail finer than 12 px is gone


def test_a_corrupted_classifier_sees_corrupted_crops_and_keeps_everything_else():
    class Recorder:
        classes, input_size = ("neutral", "happiness"), 48

        def predict_proba(self, crops):
            self.seen = crops
            return np.full((len(crops), 2), 0.5)

    inner = Recorder()
    wrapped = Corrupted(inner, "sunglasses")
    x = _faces()
    assert wrapped.predict_proba(x).shape == (3, 2)
    assert np.array_equal(inner.seen, sunglasses(x))
    assert wrapped.classes == inner.classes and wrapped.input_size == 48
    with pytest.raises(KeyError, match="unknown corruption 'hat'"):
        Corrupted(inner, "hat")
