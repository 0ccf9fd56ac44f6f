"""Can an architecture fit a few hundred FER2013 Training images? A quick sanity check before a long run.

Trains from scratch on the first N Training images (original labels, no augmentation, AdamW, fp32 unless --bf16)
and prints the training loss every 25 steps. A healthy network drives it towards 0 within a few hundred steps; one
that stays near the class prior (about 1.8 for FER2013) will not learn in a budget run either.

Usage: python scripts/overfit_check.py se_swin --lr 3e-4 --steps 200 [--images 256] [--data PATH]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from openfer.datasets import load_dataset
from openfer.nn.archs import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    data = load_dataset(args.data, "Training", "fer2013")
    x = torch.from_numpy(data.pixels[: args.images]).float()[:, None] / 127.5 - 1
    y = torch.from_numpy(data.labels[: args.images]).long()
    model = build(args.arch, len(data.classes)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        i = torch.randint(0, len(x), (args.batch,))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            print(f"{args.arch} step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
