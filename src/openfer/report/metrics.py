"""Readable tables of an evaluation result (``openfer.evaluate``): headline metrics, per-class recall, confusion."""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table

#: Headline metrics in the order they are shown, with their column titles.
HEADLINE = (("n", "n"), ("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("uar", "UAR"), ("nll", "NLL"),
            ("ece", "ECE"))


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in ("n", "missed", "detected"):
        return str(value)
    if key in ("accuracy", "uar"):
        return f"{value:.2%}"
    return f"{value:.3f}"


def headline_table(result: dict, title: str = "") -> Table:
    """One-row table of n, accuracy, macro-F1, UAR, NLL and ECE (``-`` where the result has none)."""
    table = Table(title=title or None, title_justify="left")
    for _, head in HEADLINE:
        table.add_column(head, justify="right")
    table.add_row(*(_fmt(k, result.get(k)) for k, _ in HEADLINE))
    return table


def per_class_table(result: dict) -> Table:
    """Recall of each class present in the set, with its number of images ``n``."""
    table = Table(title="per-class recall", title_justify="left")
    for col, justify in (("class", "left"), ("n", "right"), ("recall", "right")):
        table.add_column(col, justify=justify)
    support = result.get("support", {})
    for c, r in result["per_class_recall"].items():
        table.add_row(c, str(support.get(c, "")), f"{r:.2%}")
    return table


def confusion_table(result: dict) -> Table:
    """The confusion matrix as rows: true class per row, predicted class per column (counts)."""
    classes = result["confusion"]["classes"]
    table = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
    table.add_column("true \\ predicted")
    for c in classes:
        table.add_column(c[:9], justify="right")
    for c, row in zip(classes, result["confusion"]["matrix"]):
        if sum(row):
            table.add_row(c, *(f"[bold]{v}[/bold]" if i == classes.index(c) else str(v) for i, v in enumerate(row)))
    return table


def metrics_view(result: dict, title: str = "") -> Group:
    """Everything ``openfer evaluate`` prints: headline, per-class recall, confusion; for photo sets also the
    detection count and the metrics over detected faces only."""
    parts = [headline_table(result, title)]
    if "missed" in result:
        det = result["detected_only"]
        parts.append(f"{result['detected']} of {result['n']} images with a face found, {result['missed']} missed "
                     f"(counted wrong above). Over detected faces only: accuracy {_fmt('accuracy', det['accuracy'])}, "
                     f"UAR {_fmt('uar', det['uar'])}, macro-F1 {_fmt('macro_f1', det['macro_f1'])}, "
                     f"NLL {_fmt('nll', det.get('nll'))}, ECE {_fmt('ece', det.get('ece'))}.")
    if result.get("left_out"):
        parts.append("not scored (too few images): " + ", ".join(f"{c} {n}" for c, n in result["left_out"].items()))
    parts += [per_class_table(result), confusion_table(result)]
    return Group(*parts)
