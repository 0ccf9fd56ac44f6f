"""Face features (openfer embed), heads on a user's labels (openfer fit) and their ONNX export."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import astronaut, save
from typer.testing import CliRunner

import openfer
from openfer.cli import app
from openfer.classify.features import feature_groups
from openfer.heads import LabelFileError, compose, cross_validate, fit_head, read_labels, save_model, training_set
from openfer.heads.export import head_only
from openfer.io.features import FeatureTable, load_features
from openfer.zoo.registry import get_spec, model_path

runner = CliRunner()


def toy_crops(n: int, kind: int, seed: int) -> np.ndarray:
    """48 px grey crops of two (or three) easily told apart kinds: a left-right ramp, a top-down ramp, a blob."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 215, 48)
    base = [np.tile(ramp, (48, 1)), np.tile(ramp[:, None], (1, 48)),
            255 * np.exp(-((np.arange(48)[:, None] - 24) ** 2 + (np.arange(48) - 24) ** 2) / 200.0)][kind]
    return np.clip(base + rng.normal(0, 25, (n, 48, 48)), 0, 255).astype(np.uint8)


def toy_table(clf, kinds: int = 2, people: int = 8, per_person: int = 3, tmp_path=None):
    """A FeatureTable of toy crops (one fake file per crop, ``people`` groups per class) and its labels CSV."""
    crops, labels, groups = [], [], []
    for k in range(kinds):
        for p in range(people):
            crops.append(toy_crops(per_person, k, seed=100 * k + p))
            labels += [f"class{k}"] * per_person
            groups += [f"k{k}p{p}"] * per_person
    crops = np.concatenate(crops)
    probs, feats = clf.predict_features(crops)
    paths = [str(tmp_path / f"face{i}.png") if tmp_path else f"face{i}.png" for i in range(len(crops))]
    n = len(crops)
    table = FeatureTable(paths, np.zeros(n, np.int64), np.full(n, np.nan), np.zeros(n, np.int64),
                         np.tile(np.array([0, 0, 48, 48], np.float32), (n, 1)), np.ones(n, np.float32), probs, feats,
                         clf.classes, clf.spec.name)
    return crops, table, labels, groups


def write_csv(tmp_path, paths, labels, groups=None):
    for p in paths:
        save(tmp_path / p.split("/")[-1], np.zeros((8, 8, 3), np.uint8))
    lines = ["path,label" + (",group" if groups else "")]
    lines += [",".join([p.split("/")[-1], lab] + ([g] if groups else [])) for p, lab, g in
              zip(paths, labels, groups or [None] * len(paths))]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "labels.csv"


@pytest.fixture(scope="module")
def fast():
    return openfer.load_classifier("fast", threads=1)


def test_features_are_the_input_of_the_last_layer():
    """softmax((W f + b) / T) of an exported network's own last layer (fast-v1) reproduces its probabilities from
    the features."""
    fast = openfer.load_classifier("fast-v1", threads=1)
    crops = toy_crops(6, 0, seed=1)
    probs, feats = fast.predict_features(crops)
    model = onnx.load(str(model_path(fast.spec)))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    temperature = float({p.key: p.value for p in model.metadata_props}["temperature"])
    z = (feats @ inits["net.head.3.weight"].T + inits["net.head.3.bias"]) / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), probs, atol=1e-4)
    np.testing.assert_allclose(probs, fast.predict_proba(crops), atol=1e-6)
    assert feats.shape == (6, 128)


@pytest.mark.parametrize("name, networks, passes, dim", [
    ("default-v1", 5, 2, 1280), ("fer2013-v1", 3, 2, 768), ("fast-v1", 1, 2, 128),
    ("large", 4, 2, 3 * 256 + 1024),  # three fer_resnet networks and the faceres MobileNet
    # a network (or five) under one refitted last layer: the (standardised) features it reads
    ("default", 1, 1, 768), ("default-v3", 1, 1, 768), ("large-v1", 1, 1, 1280), ("fast", 1, 1, 128),
    ("fer2013", 1, 1, 768),
])
def test_feature_width_of_every_shipped_model(name, networks, passes, dim):
    spec = get_spec(name)
    groups = feature_groups(onnx.load(str(model_path(spec))), len(spec.classes))
    assert len(groups) == networks and all(len(names) == passes for names, _ in groups)  # mirror TTA: 2 passes
    assert sum(d for _, d in groups) == dim


def test_analyzer_embed_fills_embedding_and_keeps_probabilities(fast):
    analyzer = openfer.Analyzer(classifier=fast)
    plain = analyzer.analyze(astronaut())
    faces = analyzer.embed(astronaut())
    assert len(faces) == 1 and faces[0].embedding.shape == (128,) and plain[0].embedding is None
    assert faces[0].probabilities == pytest.approx(plain[0].probabilities, abs=1e-6)
    assert "embedding" not in faces[0].to_dict()


def test_a_head_learns_a_separable_task_and_not_shuffled_labels(fast):
    _, table, labels, groups = toy_table(fast)
    from openfer.heads.labels import LabelSet

    def labelset(labs):
        return LabelSet(table.path, labs, groups, np.full(len(labs), np.nan), np.full(len(labs), np.nan),
                        tuple(sorted(set(labs))))

    data = training_set(labelset(labels), table)
    cv = cross_validate(data)
    assert cv["uar"] >= 0.95 and cv["folds"] == 5 and cv["groups"] == 16
    # Each person looks alike in all their photos (their own random texture) and gets a random label: a head can
    # only score above chance by recognising people it was trained on, which person-disjoint folds must prevent.
    people = [f"p{i}" for i in range(16)]
    rng = np.random.default_rng(1)
    crops = np.concatenate([np.clip(rng.integers(0, 256, (1, 48, 48)) + rng.normal(0, 8, (3, 48, 48)), 0, 255)
                            for _ in people]).astype(np.uint8)
    probs, feats = fast.predict_features(crops)
    n = len(crops)
    same = FeatureTable([f"f{i}" for i in range(n)], np.zeros(n, np.int64), np.full(n, np.nan), np.zeros(n, np.int64),
                        np.zeros((n, 4), np.float32), np.ones(n, np.float32), probs, feats, fast.classes, "fast")
    person_label = dict(zip(people, np.random.default_rng(0).permutation(["a"] * 8 + ["b"] * 8)))
    person_groups = [p for p in people for _ in range(3)]
    null = LabelSet(same.path, [person_label[p] for p in person_groups], person_groups, np.full(n, np.nan),
                    np.full(n, np.nan), ("a", "b"))
    grouped = cross_validate(training_set(null, same))["uar"]
    leaky = LabelSet(same.path, null.label, None, null.start, null.end, ("a", "b"))  # every photo its own group
    assert grouped < 0.7 and cross_validate(training_set(leaky, same))["uar"] > grouped + 0.3


@pytest.mark.parametrize("head, kinds", [("linear", 2), ("linear", 3), ("mlp", 3)])
def test_composed_onnx_equals_the_fitted_head(fast, tmp_path, head, kinds):
    crops, table, labels, groups = toy_table(fast, kinds=kinds, people=4, per_person=2)
    from openfer.heads.labels import LabelSet

    ls = LabelSet(table.path, labels, groups, np.full(len(labels), np.nan), np.full(len(labels), np.nan),
                  tuple(sorted(set(labels))))
    data = training_set(ls, table)
    pipe = fit_head(data, head=head)
    out = save_model(compose(onnx.load(str(model_path(fast.spec))), 8, pipe, data.classes,
                             {"arch": f"head:{head}"}), tmp_path / "head.onnx")
    clf = openfer.load_classifier(str(out), threads=1)
    assert clf.classes == data.classes and clf.input_size == 48
    np.testing.assert_allclose(clf.predict_proba(crops), pipe.predict_proba(data.X), atol=1e-4)
    clip = head_only(pipe, data.classes, {})
    import onnxruntime as ort

    sess = ort.InferenceSession(clip.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"clip_features": data.X})[0], pipe.predict_proba(data.X), atol=1e-4)


@pytest.mark.parametrize("rows, message", [
    ("path,label\nmissing.png,a\nmissing2.png,b\n", "file not found: missing.png"),
    ("path,label\n{a},happy\n{b},happy\n", "single class"),
    ("file,emotion\n{a},x\n", "missing path, label"),
    ("path,label\n{a},x\n{b},y\n", "at least 2 rows"),
    ("path,label,group\n{a},x,p1\n{b},x,\n{a},y,p2\n{b},y,p3\n", "group column is empty"),
])
def test_read_labels_refuses_unusable_csvs(tmp_path, rows, message):
    a, b = save(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8)), save(tmp_path / "b.png", np.zeros((8, 8, 3), np.uint8))
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(rows.format(a=a.name, b=b.name))
    with pytest.raises(LabelFileError, match=message):
        read_labels(csv_path)


def test_fit_cli_from_features_writes_a_usable_model_and_card(fast, tmp_path):
    crops, table, labels, groups = toy_table(fast, people=5, per_person=2, tmp_path=tmp_path)
    csv_path = write_csv(tmp_path, table.path, labels, groups)
    table.save(tmp_path / "feats.npz")
    out = tmp_path / "mine.onnx"
    r = runner.invoke(app, ["fit", str(csv_path), "--out", str(out), "--model", "fast", "--features",
                            str(tmp_path / "feats.npz"), "--quiet"])
    assert r.exit_code == 0, r.output
    card = (tmp_path / "mine.md").read_text()
    assert "UAR" in card and "class0 (10), class1 (10)" in card and "10 groups" in card
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["classes"]) == ["class0", "class1"] and meta["base_model"] == "fast"
    assert json.loads(meta["cv"])["uar"] >= 0.9
    assert (openfer.load_classifier(str(out)).predict_proba(crops).argmax(1) == [int(x[-1]) for x in labels]).mean() > 0.9


def test_fit_cli_refuses_one_class_and_features_of_another_model(fast, tmp_path):
    _, table, labels, groups = toy_table(fast, people=2, per_person=2, tmp_path=tmp_path)
    one = write_csv(tmp_path, table.path, ["same"] * len(labels))
    r = runner.invoke(app, ["fit", str(one), "--out", str(tmp_path / "x.onnx")])
    assert r.exit_code == 2 and "single class" in r.output and not (tmp_path / "x.onnx").exists()
    two = write_csv(tmp_path, table.path, labels, groups)
    table.save(tmp_path / "feats.npz")
    r = runner.invoke(app, ["fit", str(two), "--out", str(tmp_path / "x.onnx"), "--features",
                            str(tmp_path / "feats.npz")])
    assert r.exit_code == 2 and "not of --model 'default'" in r.output


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_embed_cli_writes_a_table_that_reads_back(tmp_path, suffix):
    photo = save(tmp_path / "in" / "astronaut.jpg", astronaut())
    save(tmp_path / "in" / "blank.png", np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / f"feats{suffix}"
    r = runner.invoke(app, ["embed", str(tmp_path / "in"), "--out", str(out), "--model", "fast", "--quiet"])
    assert r.exit_code == 0, r.output
    t = load_features(out)
    assert t.path == [str(photo)] and t.features.shape == (1, 128) and t.model == "fast"
    assert t.expression == [openfer.Analyzer(classifier="fast").analyze(astronaut())[0].expression]
    assert t.frame.tolist() == [0] and np.isnan(t.timestamp).all()


def test_embed_video_rows_carry_frame_and_track(tmp_path, fast):
    from conftest import moving_faces_video

    from openfer.embed import embed_inputs

    video = tmp_path / "v.avi"
    moving_faces_video(video, {0: [(20 + 2 * i, 30, 150) for i in range(6)]})
    result = embed_inputs(openfer.Analyzer(classifier=fast, embed=True), [], [str(video)])
    t = result.table
    assert not result.failed and len(t) >= 5 and t.features.shape[1] == 128
    assert t.frame.tolist() == sorted(t.frame.tolist()) and t.frame.min() >= 1
    assert (t.timestamp >= 0).all() and len(set(t.face_id.tolist())) <= 2


@pytest.mark.slow
def test_sigterm_keeps_the_finished_files_of_openfer_embed(tmp_path):
    """SIGTERM takes Ctrl-C's path: exit 130 and a readable table of the files finished before it."""
    import signal
    import subprocess
    import sys
    import time

    small = astronaut()[::2, ::2].copy()
    for i in range(2000):  # far more than 8 s of work on any machine
        save(tmp_path / "in" / f"p{i:04d}.jpg", small)
    out = tmp_path / "feats.npz"
    proc = subprocess.Popen([sys.executable, "-c", "from openfer.cli import main; main()", "embed",
                             str(tmp_path / "in"), "--out", str(out), "--model", "fast", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(8)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    table = load_features(out)
    assert len(table) < 2000 and len(table) == len(set(table.path))


def test_out_never_overwrites_an_input(tmp_path):
    model = tmp_path / "mine.onnx"
    model.write_bytes((model_path(get_spec("fast"))).read_bytes())
    before = model.read_bytes()
    r = runner.invoke(app, ["adapt", str(tmp_path), "--model", str(model), "--out", str(model)])
    assert r.exit_code == 2 and model.read_bytes() == before
    assert "one of your inputs" in " ".join(r.output.split())


def test_a_model_with_a_base_is_its_head_on_the_base_features():
    """`default-v3` = default-int8-v1's networks + its own head file: the composed classifier equals the head file
    run on default-int8-v1's features, and it is composed once (the cached file is reused)."""
    import onnxruntime as ort

    from openfer.zoo.registry import shipped_file

    spec = get_spec("default-v3")
    assert spec.base == "default-int8-v1"
    crops = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    _, feats = openfer.load_classifier(spec.base, threads=1).predict_features(crops)
    head = ort.InferenceSession(str(shipped_file(spec)), providers=["CPUExecutionProvider"])
    expected = head.run(None, {head.get_inputs()[0].name: feats})[0]
    np.testing.assert_allclose(openfer.load_classifier("default-v3", threads=1).predict_proba(crops), expected,
                               atol=1e-5)
    assert model_path(spec) == model_path(spec) and model_path(spec).stat().st_size > 1e6


def test_fit_cli_on_video_clips_at_clip_level(tmp_path):
    """Labelled clips with time ranges: `openfer fit --level clip` embeds the videos, takes each clip's frames
    between start and end, and scores one example per clip."""
    from conftest import moving_faces_video

    rows = ["path,label,start,end"]
    for i in range(4):
        moving_faces_video(tmp_path / f"v{i}.avi", {0: [(20 + 3 * k, 30 + 2 * i, 120 + 10 * i) for k in range(8)]},
                           fps=4.0)
        rows.append(f"v{i}.avi,{'near' if i < 2 else 'far'},0.5,1.5")
    (tmp_path / "clips.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "clip_head.onnx"
    r = runner.invoke(app, ["fit", str(tmp_path / "clips.csv"), "--out", str(out), "--model", "fast", "--level",
                            "clip", "--fps", "4", "--folds", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    table = load_features(tmp_path / "clip_head.features.npz")
    assert set(table.path) == {str(tmp_path / f"v{i}.avi") for i in range(4)} and table.frame.max() == 8
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["level"] == "clip" and json.loads(meta["cv"])["groups"] == 4
    head = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert head[1].dim_value == 4 * 128  # mean, std, min, max of the 128 fast features
    from openfer.heads import LabelSet, read_labels

    labels = read_labels(tmp_path / "clips.csv")
    data = training_set(labels, table, "clip")
    assert data.X.shape == (4, 512)
    frames_in_range = ((table.timestamp >= 0.5) & (table.timestamp <= 1.5)).sum() // 4
    assert 3 <= frames_in_range <= 5  # 0.5-1.5 s at 4 fps: the clip statistics use those frames only
    assert isinstance(labels, LabelSet)


def test_folders_give_their_photos_and_their_videos(tmp_path):
    from conftest import moving_faces_video

    from openfer.embed import split_inputs

    save(tmp_path / "a" / "p.jpg", astronaut())
    moving_faces_video(tmp_path / "a" / "b" / "clip.avi", {0: [(20, 30, 120)] * 3})
    (tmp_path / "a" / "notes.txt").write_text("x")
    images, videos = split_inputs([str(tmp_path / "a"), "rtsp://cam/1"])
    assert images == [tmp_path / "a" / "p.jpg"]
    assert videos == ["rtsp://cam/1", str(tmp_path / "a" / "b" / "clip.avi")]
    assert split_inputs([str(tmp_path / "a")], recursive=False)[1] == []


def test_heads_stack_on_composed_models(tmp_path):
    """A head fitted on `default` (itself three networks + a head), then adapted, then embedded again: every layer
    of composition gets its own tensor names, each file still gives features and probabilities, and each keeps
    the list of networks it averages."""
    from openfer.adapt import adapt, adapted_model
    from openfer.heads.labels import LabelSet

    clf = openfer.load_classifier("default", threads=1)
    crops, table, labels, groups = toy_table(clf, people=3, per_person=2)
    data = training_set(LabelSet(table.path, labels, groups, np.full(len(labels), np.nan),
                                 np.full(len(labels), np.nan), ("class0", "class1")), table)
    fitted = save_model(compose(onnx.load(str(model_path(clf.spec))), 8, fit_head(data), data.classes, {}),
                        tmp_path / "fitted.onnx")
    mine = openfer.load_classifier(str(fitted), threads=1)
    from openfer.train.combine import network_count

    assert network_count(fitted) == network_count(model_path(clf.spec)) == 3
    probs, feats = mine.predict_features(crops)
    assert probs.shape == (len(crops), 2) and feats.shape == (len(crops), 768)
    result = adapt(probs, feats, (0.5, 0.5), method="both", keep=0.6)
    again = adapted_model(onnx.load(str(fitted)), data.classes, np.array([0.5, 0.5]), result.target_prior,
                          result.head, result.alpha)
    (tmp_path / "adapted.onnx").write_bytes(again.SerializeToString())
    twice = openfer.load_classifier(str(tmp_path / "adapted.onnx"), threads=1)
    np.testing.assert_allclose(twice.predict_proba(crops), result.probabilities, atol=2e-4)
    assert twice.predict_features(crops)[1].shape[0] == len(crops)
