"""The plain-language sentence of an explanation, built only from the measured region shares and probability."""

from __future__ import annotations

#: How each region is named in sentences.
REGION_LABELS: dict[str, str] = {
    "brows_eyes": "brows/eyes", "nose": "nose", "mouth_jaw": "mouth/jaw",
    "other": "outside these regions (forehead, cheeks, hair, background)",
}
#: A region with at least this share is "mostly" where the evidence came from.
MOSTLY = 0.5
#: Regions below this share are not listed (they would be noise in a sentence).
MENTION = 0.05


def rationale(target: str, probability: float, shares: dict[str, float], method: str = "") -> str:
    """One sentence such as ``"happiness 0.91 — mostly from the mouth/jaw region (58 %); brows/eyes 27 %."``.

    Args:
        target: the class explained.
        probability: the model's probability of ``target``.
        shares: region -> share of the positive evidence (``regions.region_shares``); all 0 means none.
        method: named at the end in brackets when given.

    The sentence states only these numbers, rounded: no facial action is claimed that was not measured.
    """
    head = f"{target} {probability:.2f}"
    tail = f" [{method}]" if method else ""
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    if not ranked or ranked[0][1] <= 0:
        return f"{head} — no part of the face raised this probability measurably.{tail}"
    (top, share), rest = ranked[0], ranked[1:]
    pct = lambda v: f"{round(100 * v)} %"  # noqa: E731 - local shorthand
    if top == "other":
        lead = f"most evidence lies {REGION_LABELS['other']} ({pct(share)})"
    elif share >= MOSTLY:
        lead = f"mostly from the {REGION_LABELS[top]} region ({pct(share)})"
    else:
        lead = f"spread out; the largest share is the {REGION_LABELS[top]} region ({pct(share)})"
    others = [f"{'elsewhere' if name == 'other' else REGION_LABELS[name]} {pct(v)}" for name, v in rest
              if v >= MENTION]
    return f"{head} — {lead}" + (f"; {', '.join(others)}" if others else "") + f".{tail}"
