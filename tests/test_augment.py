"""The training augmentation's occluding bands: where they fall and the grey levels they take."""

import torch

from openfer.train.augment import AugmentConfig, augment

ONLY_BANDS = dict(rotate_deg=0.0, scale=(1.0, 1.0), translate=0.0, flip=0.0, brightness=0.0, contrast=(1.0, 1.0),
                  lowres_p=0.0, erase_p=0.0, band_p=1.0)


def _banded_rows(cfg: AugmentConfig, seed: int) -> torch.Tensor:
    x = torch.full((16, 1, 48, 48), 0.5)
    y = augment(x, cfg, torch.Generator().manual_seed(seed))
    changed = (y != 0.5).any(dim=3).squeeze(1)  # [16, 48]: rows a band covers
    assert changed.any(dim=1).all()  # band_p 1: every face gets one
    return y[y != 0.5]


def test_bands_are_dark_by_default_and_take_the_configured_grey_range():
    dark = _banded_rows(AugmentConfig(**ONLY_BANDS), 0)
    assert dark.max() <= 0.35
    light = _banded_rows(AugmentConfig(**ONLY_BANDS, band_grey=(0.7, 1.0)), 0)
    assert light.min() >= 0.7 and light.max() <= 1.0


def test_covered_marks_exactly_the_banded_faces_and_changes_no_draw():
    cfg = AugmentConfig(**{**ONLY_BANDS, "band_p": 0.5})
    x = torch.full((32, 1, 48, 48), 0.5)
    covered = torch.zeros(32, dtype=torch.bool)
    y = augment(x, cfg, torch.Generator().manual_seed(4), covered)
    assert torch.equal(covered, (y != 0.5).flatten(1).any(1)) and 0 < covered.sum() < 32
    assert torch.equal(y, augment(x, cfg, torch.Generator().manual_seed(4)))  # same faces without the argument
