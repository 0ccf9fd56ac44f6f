"""Dataset readers on small generated files: fer2013.csv (+ fer2013new.csv), class folders, dispatch, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from openfer.cli import app
from openfer.datasets import load_dataset, load_fer2013_csv, load_image_folder
from openfer.labels import CANONICAL8, FER2013_CLASSES

ROWS = [  # emotion, usage, FER+ votes (10 columns)
    (3, "Training", [0, 9, 0, 0, 0, 0, 0, 0, 1, 0]),     # happy; FER+ happiness
    (6, "Training", [5, 1, 0, 4, 0, 0, 0, 0, 0, 0]),     # neutral; FER+ majority neutral after 1-vote removal
    (0, "Training", [3, 0, 0, 3, 3, 0, 0, 0, 1, 0]),     # angry; FER+ no majority -> dropped
    (5, "PublicTest", [0, 0, 10, 0, 0, 0, 0, 0, 0, 0]),  # surprise
    (1, "PrivateTest", [0, 0, 0, 0, 0, 10, 0, 0, 0, 0]),
]


def write_fer_csvs(folder, side=4, with_votes=True):
    lines = ["emotion,pixels,Usage"]
    for i, (emo, usage, _) in enumerate(ROWS):
        lines.append(f"{emo},{' '.join(str((i * 10 + k) % 256) for k in range(side * side))},{usage}")
    (folder / "fer2013.csv").write_text("\n".join(lines) + "\n")
    if with_votes:
        head = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
        body = [f"{u},fer{i:07d}.png," + ",".join(map(str, v)) for i, (_, u, v) in enumerate(ROWS)]
        (folder / "fer2013new.csv").write_text("\n".join([head, *body]) + "\n")
    return folder / "fer2013.csv"


def test_fer2013_csv_original_labels(tmp_path):
    s = load_fer2013_csv(write_fer_csvs(tmp_path), "Training", "fer2013")
    assert s.classes == FER2013_CLASSES and s.pixels.shape == (3, 4, 4) and s.pixels.dtype == np.uint8
    assert s.labels.tolist() == [3, 6, 0]
    assert s.pixels[1, 0, 0] == 10 and s.pixels[1, 3, 3] == 25


def test_fer2013_csv_joined_with_ferplus_votes(tmp_path):
    s = load_fer2013_csv(write_fer_csvs(tmp_path), "Training", "ferplus")
    assert s.classes == CANONICAL8
    assert [CANONICAL8[i] for i in s.labels] == ["happiness", "neutral"]  # the tie row is dropped
    np.testing.assert_allclose(s.targets.sum(1), 1)
    test = load_dataset(tmp_path / "fer2013.csv", "PublicTest", "ferplus")
    assert [CANONICAL8[i] for i in test.labels] == ["surprise"]


def test_fer2013_csv_errors(tmp_path):
    path = write_fer_csvs(tmp_path, with_votes=False)
    with pytest.raises(ValueError, match="FER\\+ votes"):
        load_fer2013_csv(path, "Training", "ferplus")
    with pytest.raises(ValueError, match="no rows"):
        load_fer2013_csv(path, "Validation", "fer2013")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not fer2013.csv"):
        load_fer2013_csv(tmp_path / "other.csv", "Training")


def make_folder(root, names, per_class=2, size=(30, 40)):
    for n, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(np.full(size + (3,), 40 * n + k, np.uint8)).save(root / name / f"{k}.png")
    return root


@pytest.mark.parametrize(
    "names,layout,expected",
    [
        (["happy", "Neutral", "sad"], None, ("neutral", "happiness", "sadness")),
        (["1", "4", "7"], "raf-db", ("neutral", "happiness", "surprise")),
        (["0", "7"], "affectnet", ("neutral", "contempt")),
    ],
)
def test_image_folder_layouts(tmp_path, names, layout, expected):
    s = load_image_folder(make_folder(tmp_path / "d", names), size=24, mapping=layout)
    assert s.classes == expected
    assert s.pixels.shape == (2 * len(names), 24, 24)
    assert sorted(np.bincount(s.labels).tolist()) == [2] * len(names)


def test_image_folder_skips_bad_files_and_rejects_unknown_names(tmp_path):
    root = make_folder(tmp_path / "d", ["happy"])
    (root / "happy" / "broken.jpg").write_bytes(b"not an image")
    assert len(load_image_folder(root)) == 2
    (root / "bored").mkdir()
    (root / "bored" / "x.png").write_bytes(b"")
    with pytest.raises(KeyError, match="bored"):
        load_image_folder(root)
    with pytest.raises(KeyError, match="raf-db"):
        load_image_folder(tmp_path / "d", mapping="nope")


def test_load_dataset_picks_split_subfolder(tmp_path):
    make_folder(tmp_path / "raf" / "test", ["4", "6"])
    s = load_dataset(tmp_path / "raf", "test", mapping="raf-db")
    assert s.classes == ("happiness", "anger")


def test_evaluate_cli_on_folder_with_confusion_png(tmp_path):
    root = make_folder(tmp_path / "faces", ["happy", "sad", "angry"], size=(48, 48))
    out, png = tmp_path / "m.json", tmp_path / "cm.png"
    res = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--split", "none", "--confusion", str(png),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 6 and metrics["confusion"]["classes"] == ["happiness", "sadness", "anger"]
    assert np.asarray(metrics["confusion"]["matrix"]).sum() == 6  # argmax restricted to the folder's 3 classes
    img = np.asarray(Image.open(png))
    assert img.ndim == 3 and img.shape[0] > 200 and (img < 250).any()
