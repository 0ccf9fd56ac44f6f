"""The ``openfer`` command line (through typer's CliRunner) and the batch pipeline behind it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import ASTRONAUT_FACE, CLASSES, astronaut, chelsea, iou, label_of, save, scattered_heads, write_bytes
from openfer.cli import app
from openfer.io.rows import row_columns

RECORD_KEYS = {"path", "ok", "error", "width", "height", "num_faces", "faces", "annotated", "detect_sides"}
FACE_KEYS = {"face", "box", "confidence", "landmarks", "expression", "probabilities"}


def run_cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def read_jsonl(path: Path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def check_record(rec: dict) -> None:
    """The JSONL schema of ``ImageResult.to_dict`` (src/openfer/types.py)."""
    assert set(rec) == RECORD_KEYS
    assert isinstance(rec["path"], str) and isinstance(rec["ok"], bool)
    assert rec["ok"] == (rec["error"] is None)
    assert rec["num_faces"] == len(rec["faces"])
    if rec["ok"]:
        assert isinstance(rec["width"], int) and isinstance(rec["height"], int)
    else:
        assert isinstance(rec["error"], str) and rec["error"].strip()
        assert rec["faces"] == [] and rec["width"] is None and rec["annotated"] is None
    for i, f in enumerate(rec["faces"]):
        assert set(f) == FACE_KEYS and f["face"] == i
        assert len(f["box"]) == 4 and 0 <= f["confidence"] <= 1
        assert np.array(f["landmarks"]).shape == (5, 2)
        assert list(f["probabilities"]) == list(CLASSES)
        assert f["expression"] in CLASSES
        assert abs(sum(f["probabilities"].values()) - 1) < 1e-3
        assert f["expression"] == label_of([f["probabilities"][c] for c in CLASSES])


@pytest.fixture
def mixed_folder(tmp_path):
    """in/{astronaut.jpg, sub/astronaut.jpg, cat.png, corrupt.jpg, empty.png}."""
    root = tmp_path / "in"
    save(root / "astronaut.jpg", astronaut(), quality=92)
    save(root / "sub" / "astronaut.jpg", astronaut(), quality=92)
    save(root / "cat.png", chelsea())
    write_bytes(root / "corrupt.jpg", b"\xff\xd8\xff\xe0 definitely not a jpeg " + bytes(range(256)) * 4)
    write_bytes(root / "empty.png", b"")
    write_bytes(root / "notes.txt", b"ignored: not an image suffix")
    return root


def test_analyze_mixed_folder(mixed_folder, tmp_path):
    out_jsonl, out_csv, ann = tmp_path / "out.jsonl", tmp_path / "out.csv", tmp_path / "ann"
    res = run_cli("analyze", mixed_folder, "--jsonl", out_jsonl, "--csv", out_csv, "--annotate", ann)
    assert res.exit_code == 1, res.output

    recs = read_jsonl(out_jsonl)
    assert len(recs) == 5
    for r in recs:
        check_record(r)
    by_name = {Path(r["path"]).relative_to(mixed_folder).as_posix(): r for r in recs}
    assert set(by_name) == {"astronaut.jpg", "sub/astronaut.jpg", "cat.png", "corrupt.jpg", "empty.png"}
    for name in ("corrupt.jpg", "empty.png"):
        assert by_name[name]["ok"] is False and by_name[name]["num_faces"] == 0
    assert "empty" in by_name["empty.png"]["error"]
    for name in ("astronaut.jpg", "sub/astronaut.jpg"):
        r = by_name[name]
        assert r["ok"] is True and r["num_faces"] == 1
        assert (r["width"], r["height"]) == (512, 512)
        assert iou(r["faces"][0]["box"], ASTRONAUT_FACE) > 0.5
    cat = by_name["cat.png"]
    assert cat["ok"] is True and cat["num_faces"] == 0 and (cat["width"], cat["height"]) == (451, 300)

    with open(out_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == row_columns(CLASSES, photos=True)
    body = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert len(body) == 2
    assert sorted(Path(r["path"]).relative_to(mixed_folder).as_posix() for r in body) == [
        "astronaut.jpg", "sub/astronaut.jpg"]
    for r in body:
        assert r["face"] == "0"
        p = np.array([float(r[f"p_{c}"]) for c in CLASSES])
        assert abs(p.sum() - 1) < 1e-3 and (p >= 0).all()
        assert r["expression"] == label_of(p)
        assert iou([float(r[k]) for k in ("x1", "y1", "x2", "y2")], ASTRONAUT_FACE) > 0.5
        assert float(r["left_eye_x"]) < float(r["right_eye_x"])
        # the CSV row and the JSONL record describe the same face
        face = by_name[Path(r["path"]).relative_to(mixed_folder).as_posix()]["faces"][0]
        np.testing.assert_allclose(p, [face["probabilities"][c] for c in CLASSES], atol=1e-4)
        np.testing.assert_allclose([float(r[k]) for k in ("x1", "y1", "x2", "y2")], face["box"], atol=0.01)
        np.testing.assert_allclose(float(r["confidence"]), face["confidence"], atol=1e-4)
        assert r["expression"] == face["expression"]

    annotated = sorted(p for p in ann.iterdir() if p.name != ".openfer-output")
    assert len(annotated) == 3, annotated  # both astronauts and the cat; not the two unreadable files
    assert all(p.suffix == ".jpg" for p in annotated)
    assert {p.name for p in annotated} == {"astronaut.jpg", "astronaut-1.jpg", "cat.jpg"}
    ann_in_records = {r["annotated"] for r in recs if r["ok"]}
    assert ann_in_records == {str(p) for p in annotated}
    for p in annotated:
        with Image.open(p) as im:
            assert im.format == "JPEG"
            assert im.size in {(512, 512), (451, 300)}


def test_second_run_skips_openfer_outputs_in_the_folder(tmp_path):
    """Annotated copies written inside the input folder are not analysed as new photos by this run or the next
    (issue 17 item 7), and the user is told what was left out."""
    root = tmp_path / "photos"
    save(root / "a.jpg", astronaut(), quality=92)
    save(root / "c.png", chelsea())
    first = run_cli("analyze", root, "--jsonl", tmp_path / "1.jsonl", "--annotate", root / "annotated")
    assert first.exit_code == 0, first.output
    assert len(list((root / "annotated").glob("*.jpg"))) == 2
    again = run_cli("analyze", root, "--jsonl", tmp_path / "2.jsonl")
    assert again.exit_code == 0, again.output
    assert sorted(Path(r["path"]).name for r in read_jsonl(tmp_path / "2.jsonl")) == ["a.jpg", "c.png"]
    assert "skipped 2 images in openfer's own output folders" in again.output
    before = (root / "a.jpg").read_bytes()
    own = run_cli("analyze", root / "a.jpg", root / "c.png", "--jsonl", tmp_path / "3.jsonl", "--annotate", root)
    assert own.exit_code == 0, own.output  # the photos' own folder: used, never marked, no photo overwritten
    assert (root / "a.jpg").read_bytes() == before and (root / "a-1.jpg").is_file() and (root / "c.jpg").is_file()
    assert not (root / ".openfer-output").exists()


def test_analyze_all_good_exit_0(tmp_path):
    a = save(tmp_path / "a.png", astronaut())
    c = save(tmp_path / "c.jpg", chelsea())
    out = tmp_path / "r.jsonl"
    res = run_cli("analyze", a, c, "--jsonl", out, "-q")
    assert res.exit_code == 0, res.output
    recs = read_jsonl(out)
    assert [r["num_faces"] for r in recs] == [1, 0]
    assert all(r["ok"] for r in recs)


def test_analyze_no_inputs_exit_2():
    res = run_cli("analyze")
    assert res.exit_code == 2
    assert "no inputs" in res.output


def test_analyze_folder_without_images_exit_2(tmp_path):
    write_bytes(tmp_path / "readme.txt", b"hello")
    res = run_cli("analyze", tmp_path)
    assert res.exit_code == 2
    assert "no image files" in res.output


def test_analyze_missing_file(tmp_path):
    good = save(tmp_path / "a.png", astronaut())
    out = tmp_path / "r.jsonl"
    res = run_cli("analyze", good, tmp_path / "missing.jpg", "--jsonl", out, "-q")
    assert res.exit_code == 1, res.output
    recs = read_jsonl(out)
    assert len(recs) == 2
    for r in recs:
        check_record(r)
    assert recs[0]["ok"] is True
    assert recs[1]["ok"] is False and "not found" in recs[1]["error"]


def test_analyze_glob(tmp_path):
    save(tmp_path / "x1.png", astronaut())
    save(tmp_path / "x2.png", chelsea())
    save(tmp_path / "other.jpg", astronaut())
    out = tmp_path / "r.jsonl"
    res = run_cli("analyze", str(tmp_path / "x*.png"), "--jsonl", out, "-q")
    assert res.exit_code == 0, res.output
    recs = read_jsonl(out)
    assert [Path(r["path"]).name for r in recs] == ["x1.png", "x2.png"]
    assert [r["num_faces"] for r in recs] == [1, 0]


@pytest.mark.parametrize("explicit", [True, False], ids=["--jsonl -", "default-stdout"])
def test_analyze_jsonl_stdout(tmp_path, explicit):
    a = save(tmp_path / "a.png", astronaut())
    args = ["analyze", a, "-q"] + (["--jsonl", "-"] if explicit else [])
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    check_record(rec)
    assert rec["num_faces"] == 1
    assert not (tmp_path / "-").exists()


def test_analyze_haar_detector(tmp_path):
    a = save(tmp_path / "a.png", astronaut())
    out = tmp_path / "r.jsonl"
    res = run_cli("analyze", a, "--detector", "haar", "--jsonl", out, "-q")
    assert res.exit_code == 0, res.output
    (rec,) = read_jsonl(out)
    check_record(rec)
    assert rec["num_faces"] == 1
    assert iou(rec["faces"][0]["box"], ASTRONAUT_FACE) > 0.5


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--model", "nope"], "nope"),
        (["--detector", "nope"], "nope"),
        # issue 17 item 5: nonsense values and options that do nothing for photos were accepted silently
        (["--threshold", "5"], "--threshold"),
        (["--max-side", "-5"], "--max-side"),
        (["--smooth", "2"], "--smooth"),
        (["--fps", "0"], "fps must be above 0"),
        (["--start", "2", "--end", "1"], "end (1 s) must come after start (2 s)"),
        (["--summary", "s.json"], "only apply to videos"),
        (["--every", "5", "--smooth", "0.5"], "--every, --smooth only apply to videos"),
        (["--out", "rows.txt"], "for photos give a .jsonl"),
        (["--annotate", "one.jpg"], "give a folder"),
    ],
)
def test_analyze_usage_errors_exit_2(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    a = save(tmp_path / "a.png", astronaut())
    res = run_cli("analyze", a, *args, "--jsonl", tmp_path / "r.jsonl")
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "one.jpg").exists()  # nothing written
    assert "rror" in res.output and needle in res.output.replace("\n", " ")
    assert "Traceback" not in res.output
    if "--model" in args:
        assert "default" in res.output  # the message lists the registered models


def test_analyze_options_are_the_settings_object():
    """Issue 17: ``openfer analyze`` declares each analysis option once and builds one ``AnalysisSettings`` from
    them, so their defaults are the library's; the settings' checks are the CLI's usage errors."""
    import inspect
    from dataclasses import fields

    from openfer import cli
    from openfer.settings import AnalysisSettings

    params, default = inspect.signature(cli.analyze).parameters, AnalysisSettings()
    shared = [f.name for f in fields(AnalysisSettings) if f.name in params]
    assert len(shared) >= 14
    for name in shared:
        assert params[name].default == getattr(default, name), name
    assert AnalysisSettings(every=5, smooth=0.5, reid=True).video_options() == ["every", "smooth", "reid"]
    res = run_cli("analyze", "x.mp4", "--out", "r.csv", "--prior", "uniform")
    assert res.exit_code == 2 and "uniform" in res.output


@pytest.mark.parametrize("ending", [".jsonl", ".csv", ".parquet"])
def test_photos_take_out_by_its_ending(tmp_path, ending):
    """One output vocabulary: --out FILE works for photos as for videos (it wrote nothing before), and the rows of a
    photo have the same names as a video's where they mean the same (``confidence``, not ``score``)."""
    a = save(tmp_path / "a.png", astronaut())
    res = run_cli("analyze", a, "--out", tmp_path / f"r{ending}", "-q")
    assert res.exit_code == 0, res.output
    if ending == ".jsonl":
        assert read_jsonl(tmp_path / "r.jsonl")[0]["num_faces"] == 1
        return
    from openfer.io.rows import read_rows

    df = read_rows(tmp_path / f"r{ending}")
    assert list(df.columns) == row_columns(CLASSES, photos=True) and len(df) == 1
    assert list(df.columns[:3]) == ["path", "face", "confidence"] and df["face"].tolist() == [0]
    assert iou(df[["x1", "y1", "x2", "y2"]].to_numpy()[0], ASTRONAUT_FACE) > 0.5


def test_photo_rows_to_standard_output(tmp_path):
    a = save(tmp_path / "a.png", astronaut())
    res = run_cli("analyze", a, "--csv", "-", "-q")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("path,face,confidence,x1") and lines[1].startswith(f"{a},0,")
    assert not (Path.cwd() / "-").exists()


def test_outputs_never_overwrite_inputs_or_existing_files(tmp_path):
    """Issue 18 item 1: an output naming an input is refused (always), an existing file only with --overwrite,
    and outputs appear only complete (no temporary file left)."""
    a = save(tmp_path / "a.png", astronaut())
    before = a.read_bytes()
    res = run_cli("analyze", a, "--csv", a)
    assert res.exit_code == 2 and "is one of the inputs" in res.output and a.read_bytes() == before
    old = tmp_path / "r.jsonl"
    old.write_text("earlier results\n")
    res = run_cli("analyze", a, "--jsonl", old)
    assert res.exit_code == 2 and "exists; pass --overwrite" in res.output.replace("\n", " ")
    assert old.read_text() == "earlier results\n"
    res = run_cli("analyze", a, "--jsonl", old, "--overwrite", "-q")
    assert res.exit_code == 0 and read_jsonl(old)[0]["num_faces"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part.jsonl")]
    res = run_cli("analyze", a, "--jsonl", tmp_path / "x.csv", "--csv", tmp_path / "x.csv")
    assert res.exit_code == 2 and "name the same file" in res.output


def test_analyze_options_threshold_and_max_side(tmp_path):
    a = save(tmp_path / "a.png", astronaut())
    out = tmp_path / "r.jsonl"
    res = run_cli("analyze", a, "--threshold", "0.99", "--max-side", "0", "--jsonl", out, "-q")
    assert res.exit_code == 0, res.output
    assert read_jsonl(out)[0]["num_faces"] == 0  # the astronaut scores ~0.93, below a 0.99 threshold


def test_analyze_summary_on_stderr(tmp_path):
    a = save(tmp_path / "a.png", astronaut())
    res = run_cli("analyze", a, "--jsonl", tmp_path / "r.jsonl")
    assert res.exit_code == 0
    assert "1 image, 1 face, 0 failed" in res.stderr
    assert res.stdout == ""


def test_analyze_big_photo_keeps_small_faces_and_says_so(tmp_path):
    """A 4000x3000 photo with 24 faces ~100-150 px: all found at default settings, and the CLI says how."""
    photo = save(tmp_path / "group.jpg", scattered_heads(4000, 3000, 24)[0], quality=92)
    small = save(tmp_path / "small.jpg", astronaut())
    out = tmp_path / "r.jsonl"
    res = run_cli("analyze", photo, small, "--jsonl", out)
    assert res.exit_code == 0, res.output
    recs = {Path(r["path"]).name: r for r in read_jsonl(out)}
    assert recs["group.jpg"]["num_faces"] == 24 and recs["group.jpg"]["detect_sides"] == [640, 1280]
    assert recs["small.jpg"]["num_faces"] == 1 and recs["small.jpg"]["detect_sides"] == [512]
    assert "1 large image also searched for small faces at finer scales (e.g. 640 + 1280 px" in res.stderr


def test_analyze_annotation_style(tmp_path):
    """--style panel draws the probability panel, --style compact only box and label; a wrong style exits 2."""
    photo = save(tmp_path / "a.png", astronaut())
    drawn = {}
    for style in ("panel", "compact"):
        res = run_cli("analyze", photo, "--annotate", tmp_path / style, "--style", style, "-q")
        assert res.exit_code == 0, res.output
        drawn[style] = np.asarray(Image.open(tmp_path / style / "a.jpg")).astype(int)
    right_of_face = (slice(60, 170), slice(int(ASTRONAUT_FACE[2]) + 8, 400))  # where the panel goes
    assert np.abs(drawn["panel"][right_of_face] - drawn["compact"][right_of_face]).mean() > 20
    res = run_cli("analyze", photo, "--annotate", tmp_path / "x", "--style", "fancy")
    assert res.exit_code == 2 and "fancy" in res.output


def test_models_lists_default():
    res = CliRunner().invoke(app, ["models", "--wide"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "default" in res.stdout and "UAR" in res.stdout
    from openfer.zoo.registry import MODELS

    for spec in MODELS.values():  # UAR printed next to accuracy wherever the registry states it
        for key in ("publictest_ferplus_uar", "publictest_fer2013_uar"):
            if key in spec.metrics:
                assert f"{spec.metrics[key]:.2%}" in res.stdout


def test_models_fits_80_columns_with_whole_names_and_speed():
    """The table of `openfer models` keeps every name whole at 80 columns and has a speed column (ours, or
    measured here with --speed)."""
    from openfer.zoo.registry import MODELS

    res = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in res.stdout
    assert "ms/face" in res.stdout
    rows = {line.split()[1]: line for line in lines if line.startswith("│")}
    assert set(rows) == set(MODELS)
    assert f"{MODELS['fast'].ms_per_face:.1f}" in rows["fast"]


def test_models_says_which_optional_model_files_are_here(tmp_path, monkeypatch):
    """`openfer models` also lists the model files fetched only on request, and whether this machine has them."""
    from openfer.geometry.model_file import MODEL_FILES

    monkeypatch.setenv("OPENFER_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in MODEL_FILES.names():
        assert f"optional model file {name}:" in res.stdout and f"openfer models fetch {name}" in res.stdout


def test_models_speed_measures_here(monkeypatch):
    import openfer.zoo.speed as speed

    calls = []
    monkeypatch.setattr(speed, "ms_per_face", lambda clf, *a, **k: calls.append(clf.spec.name) or 7.77)
    res = CliRunner().invoke(app, ["models", "--speed"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    from openfer.zoo.registry import MODELS

    assert calls == list(MODELS) and "ms/face here" in res.stdout and res.stdout.count(" 7.8 │") == len(MODELS)


def test_python_dash_m_has_every_command():
    """``python -m openfer`` and ``python -m openfer.cli`` (openfer run from src/, e.g. on a lent GPU machine) know
    the commands other files register (train, report, embed), not only cli.py's own."""
    import os
    import subprocess
    import sys

    for module in ("openfer", "openfer.cli"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "COLUMNS": "120"})
        assert out.returncode == 0 and all(c in out.stdout for c in ("train", "report", "embed", "analyze")), out


def test_no_command_shows_help():
    res = run_cli()
    assert "analyze" in res.output and "models" in res.output


# ---------------------------------------------------------------------------------------------------------------
# the pipeline: interruption
# ---------------------------------------------------------------------------------------------------------------


def test_run_images_interrupt_keeps_complete_lines(tmp_path, analyzer):
    from openfer.pipeline import run_images

    files = [save(tmp_path / f"img{i}.png", astronaut() if i % 2 == 0 else chelsea()) for i in range(4)]
    out_jsonl, out_csv = tmp_path / "r.jsonl", tmp_path / "r.csv"
    seen = []

    def on_done(rec):
        seen.append(rec.source)
        if len(seen) == 2:
            raise KeyboardInterrupt

    summary = run_images(analyzer, files, jsonl=str(out_jsonl), csv_path=str(out_csv), on_done=on_done)
    assert summary.interrupted is True
    assert summary.done == 2 and len(summary.results) == 2
    text = out_jsonl.read_text(encoding="utf-8")
    assert text.endswith("\n")
    recs = [json.loads(line) for line in text.splitlines()]
    assert [r["path"] for r in recs] == [str(files[0]), str(files[1])]
    for r in recs:
        check_record(r)
    with open(out_csv, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 1  # header + the one face of img0 (img1 is the cat)


def test_cli_interrupt_exit_130(tmp_path, monkeypatch):
    """Ctrl-C during the 2nd image: exit code 130, and the JSONL output holds the finished image only."""
    from openfer.analyzer import Analyzer

    calls = []
    original = Analyzer.classify

    def classify(self, rgb, faces):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, rgb, faces)

    monkeypatch.setattr(Analyzer, "classify", classify)
    files = [save(tmp_path / f"img{i}.png", astronaut()) for i in range(3)]
    out = tmp_path / "r.jsonl"
    res = run_cli("analyze", *files, "--jsonl", out, "-q")
    assert res.exit_code == 130, res.output
    recs = read_jsonl(out)
    assert len(recs) == 1 and recs[0]["path"] == str(files[0]) and recs[0]["num_faces"] == 1


def test_run_images_summary_counts(tmp_path, analyzer):
    from openfer.pipeline import run_images

    files = [save(tmp_path / "a.png", astronaut()), write_bytes(tmp_path / "bad.png", b"nope"),
             save(tmp_path / "c.png", chelsea())]
    summary = run_images(analyzer, files)
    assert (summary.done, summary.failed, summary.faces, summary.interrupted) == (3, 1, 1, False)
    assert [r.ok for r in summary.results] == [True, False, True]


def test_run_images_unexpected_error_is_recorded(tmp_path, analyzer):
    """An exception other than ImageReadError on one file is recorded, and the batch goes on."""
    from openfer.pipeline import run_images

    class Exploding:
        name = "boom"

        def __init__(self):
            self.calls = 0

        def detect(self, image):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("detector exploded")
            return analyzer.detector.detect(image)

    import openfer

    a = openfer.Analyzer(detector=Exploding(), classifier=analyzer.classifier)
    files = [save(tmp_path / "a.png", astronaut()), save(tmp_path / "b.png", astronaut())]
    summary = run_images(a, files)
    assert [r.ok for r in summary.results] == [False, True]
    assert summary.results[0].error == "RuntimeError: detector exploded"
    assert len(summary.results[1].faces) == 1


# ---------------------------------------------------------------------------------------------------------------
# the real console script
# ---------------------------------------------------------------------------------------------------------------


def test_console_script_demo(tmp_path):
    exe = Path(sys.executable).parent / "openfer"
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(exe), "analyze", "--demo", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    base = tmp_path / "openfer-demo"
    recs = read_jsonl(base / "results.jsonl")
    assert len(recs) == 2 and all(r["ok"] for r in recs)
    assert sorted(r["num_faces"] for r in recs) == [0, 1]
    assert (base / "faces.csv").is_file()
    with open(base / "faces.csv", newline="") as f:
        assert len(list(csv.reader(f))) == 2  # header + the astronaut
    assert len(list((base / "annotated").glob("*.jpg"))) == 2


def test_unwritable_output_is_a_clear_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = save(tmp_path / "a.png", astronaut())
    res = CliRunner().invoke(app, ["analyze", str(path), "--jsonl", str(blocker / "sub" / "out.jsonl")])
    assert res.exit_code == 2
    assert "cannot write results" in res.output


def test_install_hints_and_bracketed_names_are_printed_not_eaten(tmp_path):
    """Rich markup must not swallow "[train]" in help texts, "[serve]" in hints, or brackets in file names."""
    from typer.testing import CliRunner

    from openfer.cli import app

    runner = CliRunner()
    flat = lambda out: " ".join(out.replace("│", " ").split())  # noqa: E731 - Rich wraps and boxes help
    help_text = flat(runner.invoke(app, ["explain", "--help"], env={"COLUMNS": "250"}).output)
    assert "needs the [train] extra" in help_text and "([train] extra)" in help_text
    assert "[geometry] extra" in flat(runner.invoke(app, ["analyze", "--help"], env={"COLUMNS": "250"}).output)
    bad = tmp_path / "shot [take 2].jpg"
    bad.write_bytes(b"not an image")
    r = runner.invoke(app, ["analyze", str(bad), "--csv", str(tmp_path / "f.csv")], terminal_width=300)
    assert r.exit_code == 1 and "[take 2]" in flat(r.output)


def test_version_and_counts_in_the_right_number():
    from typer.testing import CliRunner

    import openfer
    from openfer.cli import _n, app

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"openfer {openfer.__version__}"
    assert [_n(1, "face"), _n(2, "face"), _n(0, "image"), _n(1, "tracked person", "tracked people"),
            _n(3, "tracked person", "tracked people")] == ["1 face", "2 faces", "0 images", "1 tracked person",
                                                             "3 tracked people"]


def test_help_texts_wrap_at_the_terminal_not_mid_sentence():
    """Issue 17 item 8: docstring line breaks are not kept inside paragraphs (they broke sentences at odd places)."""
    res = CliRunner().invoke(app, ["analyze", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "runs the video pipeline: faces are tracked (face_id), rows go to --out" in res.output
    assert "2 on usage errors, 130 after Ctrl-C." in res.output


@pytest.mark.slow
def test_ctrl_c_mid_photo_run_keeps_every_finished_photo(tmp_path):
    """Issue 18: SIGINT (Ctrl-C) in the middle of a folder of photos: exit 130, and the JSONL and CSV are complete
    files holding exactly the photos finished before it (one record per photo, whole lines, rows for the same
    photos), published under their names with no temporary file left."""
    import signal
    import time

    folder = tmp_path / "photos"
    folder.mkdir()
    small = astronaut()[::2, ::2]
    for i in range(400):  # far more than get done before the signal
        save(folder / f"p{i:03d}.png", small)
    jsonl, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-c", "from openfer.cli import main; main()", "analyze", str(folder),
                             "--jsonl", str(jsonl), "--csv", str(table), "--model", "fast", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # as a terminal's foreground job gets it: a test run started in the background inherits
                            # SIGINT ignored, and Python then installs no Ctrl-C handler
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until a few photos are written to the temporary file
        parts = list(tmp_path.glob(".out.*.part.jsonl"))
        if parts and parts[0].read_text().count("\n") >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 3 <= len(records) < 400 and len({r["path"] for r in records}) == len(records)
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["path"] for r in rows} == {r["path"] for r in records if r.get("faces")}
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
