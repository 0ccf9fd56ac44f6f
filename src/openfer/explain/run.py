"""``run_explain``: explain every face in many image files, writing pictures and JSON Lines as it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image

from openfer.analyzer import Analyzer
from openfer.explain.core import check_request
from openfer.explain.overlay import render_explanations
from openfer.io.images import mark_output_folder
from openfer.io.writers import JsonlWriter
from openfer.pipeline import BatchSummary, _annotated_name, each_image, inputs_in
from openfer.types import ImageResult


def run_explain(analyzer: Analyzer, files: list[Path], out_dir: str | Path, method: str = "occlusion",
                classifier=None, target: str | None = None, heatmap_json: bool = True,
                on_done: Callable[[ImageResult], None] | None = None, **params) -> BatchSummary:
    """Detect and explain the faces of ``files`` one by one.

    Writes ``out_dir/<name>.png`` (``render_explanations``: heatmaps over the faces, region bars, sentences) and
    one record per input to ``out_dir/explanations.jsonl`` (``ImageResult.to_dict``, as ``openfer analyze``, each
    face with its ``explanation``; ``annotated`` is the picture's path). A file that cannot be read or explained gets a record
    with ``error`` and the run goes on; Ctrl-C stops after closing the outputs.

    Args:
        analyzer: its detector finds the faces (and its geometry stage, when it has one, places the regions on
            the face mesh); its classifier is explained unless ``classifier`` is given.
        classifier: the model to explain instead (e.g. a ``TorchClassifier`` for Grad-CAM).
        heatmap_json: include each S x S heatmap in the JSON records (about 15 kB per face at 48 px).
        **params: method settings, see ``openfer.explain.heatmaps``.
    """
    clf = classifier or analyzer.classifier
    if classifier is None and method.startswith("gradcam"):  # the ONNX model run in PyTorch
        from openfer.nn import TorchClassifier

        clf = TorchClassifier.from_onnx(analyzer.classifier)
    check_request(clf, method, target)  # a wrong setting fails once, before any file
    out_dir = Path(out_dir)
    mark_output_folder(out_dir)
    summary = BatchSummary()
    taken = inputs_in(out_dir, files)

    def draw(path: Path, rgb, faces: list) -> str:
        picture = out_dir / _annotated_name(path, taken, ".png")
        Image.fromarray(render_explanations(rgb, faces)).save(picture)
        return str(picture)

    def find(rgb) -> list:
        return analyzer.explain(rgb, method, classifier=clf, target=target, **params)

    jw = JsonlWriter(out_dir / "explanations.jsonl")
    try:
        for result in each_image(files, find, draw, summary, analyzer.detector):
            jw.write(result.to_dict(heatmap=heatmap_json))
            if on_done:
                on_done(result)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        jw.close()
    return summary
