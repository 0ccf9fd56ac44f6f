"""The model card written next to a fitted head: what it was trained on, how, and how well it did."""

from __future__ import annotations

from collections import Counter


def head_card(name: str, command: str, base: str, base_sha256: str, data, labels_csv: str, cv: dict,
              created: str) -> str:
    """Markdown card for ``openfer fit``'s output: data (rows, classes, groups), initialisation (the frozen base
    model and its SHA-256), recipe, the command, and the cross-validated accuracy, UAR, macro-F1, per-class
    recall and confusion matrix."""
    counts = Counter(data.classes[i] for i in data.y)
    recall = cv["per_class_recall"]
    lines = [
        f"# {name}: a head fitted with openfer fit", "",
        f"Created {created}. Weights: yours (trained on your labels); the frozen network under them is openfer's "
        f"`{base}` (MIT; see its card).", "",
        "## Data", "",
        f"- Labels: `{labels_csv}`, {cv['level']} level: {len(data.y)} examples in {cv['groups']} groups.",
        "- Classes (examples): " + ", ".join(f"{c} ({counts.get(c, 0)})" for c in data.classes) + ".",
    ]
    if data.no_face:
        lines.append(f"- {len(data.no_face)} labelled file(s) had no detectable face and were left out.")
    lines += [
        "", "## Initialisation and recipe", "",
        f"- Features: `{base}` (SHA-256 `{base_sha256}`), pooled descriptor before its last layer, frozen.",
        f"- Head: standardisation + {cv['head']} (C = {cv['C']}), classes weighted "
        f"{'equally (balanced)' if cv['balanced'] else 'by their number of examples'}.",
        f"- Command: `{command}`", "",
        "## Cross-validated results", "",
        f"{cv['folds']}-fold cross-validation, every group (person / clip) on one side of each split:", "",
        "| accuracy | UAR | macro-F1 | " + " | ".join(f"recall {c}" for c in recall) + " |",
        "|---" * (3 + len(recall)) + "|",
        f"| {cv['accuracy']:.2%} | {cv['uar']:.2%} | {cv['macro_f1']:.3f} | "
        + " | ".join(f"{r:.2%}" for r in recall.values()) + " |", "",
        "Confusion (rows: true, columns: predicted): " + ", ".join(data.classes), "",
        "```", *("  ".join(f"{v:5d}" for v in row) for row in cv["confusion"]["matrix"]), "```", "",
        "These are apparent expressions or states as your labels define them, not inner emotions or diagnoses; "
        "the numbers hold for people and settings like those in the labels.",
    ]
    return "\n".join(lines) + "\n"
