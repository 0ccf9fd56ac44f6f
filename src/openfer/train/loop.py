"""The training loop: soft-label cross-entropy, SGD/AdamW (+ SAM) with warm-up + cosine, bf16 autocast (AMX on
CPU, AMP on CUDA), EMA weights, knowledge distillation, checkpoint + resume every epoch, metrics to CSV and JSON
Lines, selection on a validation split carved from Training."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import math
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from openfer.errors import UnknownNameError, UnreadableInputError, UsageError, closest, did_you_mean
from openfer.nn.archs import build, count_params
from openfer.nn.checkpoint import Checkpoint, load_checkpoint, member_tta
from openfer.nn.tta import TTA_MODES, tta_logits
from openfer.train.augment import AugmentConfig, augment
from openfer.train.combine import fit_temperature, metadata
from openfer.train.onnx_init import freeze_batchnorm
from openfer.train.sam import sam_step
from openfer.datasets import FaceSet, load_dataset, photo_draws, split_rows
from openfer.evaluate import classification_metrics

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint."""

    name: str = "default"
    arch: str = "fer_resnet"
    arch_kwargs: dict = field(default_factory=dict)
    protocol: str = "ferplus"
    input_size: int = 48
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.05
    cover_smoothing: float = 0.0  # share of a face's target moved to the training prior where a band covers it
    soft_labels: bool = True
    ema_decay: float = 0.999
    val_fraction: float = 0.1
    seed: int = 0  # weights init, batch order, augmentation
    split_seed: int = 0  # which Training rows form validation; fixed so ensemble members share one split
    val_rows: str = ""  # "ferplus_heldout" (fer2013 protocol): validate on rows no FER+ run trained on
    bf16: bool | str = "auto"  # bf16 autocast: "auto" = on a GPU or a CPU with AMX, where it is faster
    threads: int = 0
    max_train_samples: int = 0
    tta_flip: bool = False  # older spelling of tta = "flip"
    tta: str = ""  # test-time augmentation baked into the export: none, flip or tencrop ("" = from tta_flip)
    train_split: str = "Training"
    augment: dict = field(default_factory=dict)
    optimizer: str = "sgd"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    class_weighting: str = "none"
    sam_rho: float = 0.0  # > 0: sharpness-aware minimisation with this neighbourhood radius (2 passes per step)
    teachers: list = field(default_factory=list)  # best.pt / ensemble.pt checkpoints or exported .onnx to distil from
    kd_weight: float = 0.0  # share of the teachers' probabilities in the training targets
    kd_targets: str = "online"  # "online": teachers see each augmented batch; "clean": once, the un-augmented faces
    kd_match_prior: bool = False  # "clean" teachers' probabilities re-weighted per class to the targets' mean
    aux_ferplus_weight: float = 0.0  # > 0 (fer2013 protocol): a second 8-way head learns the FER+ votes; not exported
    pretrained: str = ""  # faceres folder to initialise a faceres_mobilenet from (see openfer.train.faceres)
    backbone_lr_mult: float = 1.0  # discriminative learning rate: the pretrained layers train at lr * this
    balance: str = "none"  # "logit_adjust": softmax over logits + tau * log(prior) while training (Menon et al. 2021)
    balance_tau: float = 1.0
    drw_epoch: int = 0  # deferred re-weighting: class_weighting applies from this epoch on (0: from the start)
    select_metric: str = "acc"  # validation metric that picks best.pt: "acc" or "uar" (mean per-class recall)
    init_checkpoint: str = ""  # start from this best.pt's weights (a second stage; its prior offset is taken out),
    # or from one network of an exported .onnx or registered model (init_member; openfer.train.onnx_init)
    init_member: str = ""  # that network's scope in an ensemble file, e.g. "m0_.members.1" ("": a single network)
    freeze_bn: bool = False  # batch norms stay in eval mode (always when starting from ONNX: no statistics left)
    extra_train: list = field(default_factory=list)  # photo folders (labels.csv: muxspace layout) added to training
    extra_exclude: list = field(default_factory=list)  # classes of the extra folders left out (e.g. noisy labels)
    extra_sampling: str = "uniform"  # "match_prior": photos drawn with the FER faces' class shares (photo_draws)
    device: str = "auto"  # auto (CUDA when available), cpu or cuda
    max_seconds: float = 0.0  # > 0: after the first epoch, fewer epochs if they would not fit (the schedule follows)

    @property
    def tta_mode(self) -> str:
        """The test-time augmentation in effect (``tta``, or the older ``tta_flip``)."""
        return member_tta(asdict(self))

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "TrainConfig":
        """Read a config file; keyword overrides win (None values are ignored).

        A misspelt key is an error that names the closest real key, never a setting silently left at its default.

        Raises:
            FileNotFoundError: no file at ``path``.
            openfer.UnreadableInputError: the file is not valid TOML.
            openfer.UnknownNameError: a key (also of the ``[augment]`` table) that no setting has.
        """
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise UnreadableInputError(f"{path} is not valid TOML: {e}") from None
        data.update({k: v for k, v in overrides.items() if v is not None})
        check_keys(data, [f.name for f in fields(cls)], str(path))
        if isinstance(data.get("augment"), dict):
            check_keys(data["augment"], [f.name for f in fields(AugmentConfig)], f"[augment] of {path}")
        return cls(**data)


def check_keys(data: dict, known: list[str], where: str) -> None:
    """Raise ``UnknownNameError`` naming every key of ``data`` that is not in ``known``, each with its near match.

    >>> check_keys({"lr_mult": 0.1}, ["lr", "backbone_lr_mult"], "config.toml")
    Traceback (most recent call last):
    openfer.errors.UnknownNameError: unknown key 'lr_mult' in config.toml; did you mean 'backbone_lr_mult'?
    """
    unknown = [k for k in data if k not in known]
    if not unknown:
        return
    if len(unknown) == 1:
        msg = f"unknown key {unknown[0]!r} in {where}{did_you_mean(unknown[0], known)}"
    else:
        each = [f"{k!r}" + (f" (did you mean {match!r}?)" if (match := closest(k, known)) else "") for k in unknown]
        msg = f"unknown keys in {where}: {', '.join(each)}"
    raise UnknownNameError(msg, name=unknown[0], known=known)


def to_input(pixels: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [N, H, W] grey -> float [N, 1, size, size] in [0, 1]."""
    x = torch.from_numpy(pixels).float().div_(255).unsqueeze(1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the normalisation every shipped model declares (mean 0.5, std 0.5)."""
    return (x - 0.5) / 0.5


@torch.no_grad()
def predict_logits(model: torch.nn.Module, pixels: np.ndarray, size: int, batch: int = 512,
                   tta: str = "none") -> np.ndarray:
    """Float32 logits [N, C] for uint8 grey crops, in eval mode, float32 arithmetic, on the model's device.

    ``tta`` averages the logits over views of each crop: ``flip`` (mirror image) or ``tencrop``.
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(pixels), batch):
        x = normalize(to_input(pixels[i : i + batch], size)).to(device).contiguous(memory_format=torch.channels_last)
        out.append(tta_logits(model, x, tta).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device = 'cuda' but PyTorch sees no CUDA GPU; use 'auto' or 'cpu'")
    if name not in ("cpu", "cuda"):
        raise UnknownNameError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda'")
    return torch.device(name)


def resolve_bf16(setting: bool | str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast. ``auto``: on CUDA, and on a CPU with AMX tiles (3-4x faster there);
    a CPU without AMX computes bf16 convolutions slower than float32 (measured 0.74 s against 0.49 s per batch of
    128 for ``fer_resnet`` on an AVX-512-BF16 Xeon), so float32 there."""
    if setting == "auto":
        return device.type == "cuda" or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    if not isinstance(setting, bool):
        raise UsageError(f"bf16 = {setting!r}; use true, false or 'auto'")
    return setting


class Teacher:
    """Averaged calibrated probabilities of one or more trained models, for knowledge distillation.

    A teacher is a checkpoint (``best.pt``, ``ensemble.pt``) or an exported ONNX classifier such as a shipped
    ``default.onnx`` (run in PyTorch by ``openfer.nn.onnx_to_torch``, its mirror-image averaging and temperatures
    included), so a new session can distil from the shipped ensemble without retraining its members.
    """

    def __init__(self, paths: list[str], classes: list[str], device: torch.device) -> None:
        self.nets, self.temps, self.sizes = [], [], []
        for p in paths:
            net, teacher_classes, size, temperature = self._load(p)
            if list(teacher_classes) != list(classes):
                raise UsageError(f"teacher {p} predicts {list(teacher_classes)}; the student needs {list(classes)}")
            self.nets.append(net.to(device).to(memory_format=torch.channels_last))
            self.temps.append(temperature)
            self.sizes.append(size)  # a teacher of another input size sees the student's batch resized

    @staticmethod
    def _load(path: str) -> tuple[torch.nn.Module, list[str], int, float]:
        """(network, classes, input size, temperature) of a checkpoint or an ONNX classifier."""
        if str(path).endswith(".onnx"):
            from openfer.nn.onnx_torch import onnx_to_torch

            meta = metadata(path)
            if "classes" not in meta or "input_size" not in meta:
                raise UnreadableInputError(f"teacher {path} has no openfer metadata (classes, input_size): export "
                                           "it with openfer export")
            # the module returns calibrated logits (temperatures inside), so its own temperature is 1
            return onnx_to_torch(path), json.loads(meta["classes"]), int(meta["input_size"]), 1.0
        ck = load_checkpoint(path)
        return ck.build_model(), list(ck.classes), ck.input_size, ck.calibrated_temperature

    @torch.no_grad()
    def probs(self, x: torch.Tensor, autocast: dict) -> torch.Tensor:
        """Teacher probabilities [B, C] for a normalised (augmented) batch."""
        out = 0.0
        for net, t, size in zip(self.nets, self.temps, self.sizes):
            xs = x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="bilinear",
                                                             align_corners=False, antialias=size < x.shape[-1])
            with torch.autocast(**autocast):
                logits = net(xs)
            out = out + torch.softmax(logits.float() / t, dim=1)
        return out / len(self.nets)


def clean_teacher_probs(paths: list[str], classes: list[str], pixels: np.ndarray, out: Path) -> np.ndarray:
    """Mean calibrated probabilities [N, C] of the teachers on the un-augmented training faces (``kd_targets =
    "clean"``).

    Computed once before training, so a teacher far slower than the student costs one pass over the data instead of
    one per augmented batch: an exported file or registered model in ONNX Runtime (its mirror pass included), a
    checkpoint in PyTorch. Kept in ``out/teacher_probs.npz`` (with the faces' SHA-256) for a resumed run.
    """
    cache, faces = out / "teacher_probs.npz", hashlib.sha256(np.ascontiguousarray(pixels)).hexdigest()
    if cache.exists():
        with np.load(cache) as d:
            if "faces" in d and str(d["faces"]) == faces and list(d["teachers"]) == [str(p) for p in paths]:
                return d["probs"]
    from openfer.classify.onnx_classifier import load_classifier

    total = np.zeros((len(pixels), len(classes)), np.float32)
    for path in paths:
        if str(path).endswith(".pt"):
            ck = load_checkpoint(path)
            names = list(ck.classes)

            def run(x: np.ndarray, ck: Checkpoint = ck, net: torch.nn.Module = ck.build_model()) -> np.ndarray:
                logits = predict_logits(net, x, ck.input_size, tta=member_tta(ck.config))
                return torch.softmax(torch.from_numpy(logits) / ck.calibrated_temperature, 1).numpy()
        else:
            clf = load_classifier(str(path))
            names, run = list(clf.classes), clf.predict_proba
        if names != list(classes):
            raise UsageError(f"teacher {path} predicts {names}; the student needs {list(classes)}")
        for i in tqdm(range(0, len(pixels), 1024), desc=f"teacher {Path(str(path)).name}", mininterval=5):
            total[i : i + 1024] += run(pixels[i : i + 1024])
    probs = total / len(paths)
    np.savez(cache, probs=probs, teachers=np.array([str(p) for p in paths]), faces=np.array(faces))
    return probs


def match_prior(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``probs`` [N, C] re-weighted per class so their mean comes to the mean of ``targets`` [N, C], each row
    renormalised: a teacher that names a rare class less often than the labels do does not pass that on."""
    goal, out = np.maximum(targets.mean(0), 1e-6), probs.astype(np.float64)
    for _ in range(50):  # scale the columns, renormalise the rows, until the column means settle
        out = out * (goal / np.maximum(out.mean(0), 1e-12))
        out /= out.sum(1, keepdims=True)
    return out.astype(np.float32)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``sgd`` (Nesterov momentum 0.9) or ``adamw``; weight decay is not applied to norms and biases with AdamW.

    Each parameter group carries ``lr_mult``: ``backbone_lr_mult`` for the ``features`` of a network that starts
    from trained weights (``pretrained`` or ``init_checkpoint``), 1 for the rest (the head), so the schedule scales
    both.
    """
    warm = (cfg.pretrained or cfg.init_checkpoint) and hasattr(model, "features")
    backbone = set(map(id, model.features.parameters())) if warm else set()
    groups = []
    for is_backbone in (True, False):
        params = [p for p in model.parameters() if (id(p) in backbone) == is_backbone]
        mult = cfg.backbone_lr_mult if is_backbone else 1.0
        if cfg.optimizer == "adamw":
            groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay, "lr_mult": mult},
                       {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr_mult": mult}]
        else:
            groups.append({"params": params, "lr_mult": mult})
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise UnknownNameError(f"unknown optimizer {cfg.optimizer!r}; use 'sgd' or 'adamw'")


def class_prior(targets: np.ndarray) -> np.ndarray:
    """The training class prior [C]: the mean target distribution (FER+ vote shares, or label frequencies)."""
    prior = targets.mean(0).astype(np.float64)
    return np.maximum(prior, 1e-6) / np.maximum(prior, 1e-6).sum()


def prior_offset(cfg: TrainConfig, prior: np.ndarray) -> torch.Tensor:
    """Logit offset [C] that the balanced objective adds while training: ``tau * log(prior)`` (zeros without one).

    Logit adjustment (Menon et al. 2021; balanced softmax, Ren et al. 2020, is tau = 1): the network's own
    logits learn the class-balanced posterior, so rare classes get wider margins; adding the offset back gives
    the training-prior posterior, which is what checkpoints and exports carry (calibrated on validation).
    """
    if cfg.balance == "none":
        return torch.zeros(len(prior))
    if cfg.balance != "logit_adjust":
        raise UnknownNameError(f"unknown balance {cfg.balance!r}; use 'none' or 'logit_adjust'")
    return cfg.balance_tau * torch.from_numpy(np.log(prior)).float()


def smoothing_target(offset: torch.Tensor) -> torch.Tensor:
    """Where label smoothing puts its mass: uniform, or with a balanced objective softmax(offset) = the prior^tau,
    which is uniform in the balanced logits. (Uniform smoothing would give contempt, 0.4 % of FER+, a target
    floor above its prior, i.e. a large balanced score on every face.)"""
    return torch.softmax(offset, dim=0)


def class_weights(labels: np.ndarray, n_cls: int, scheme: str) -> torch.Tensor:
    """Per-class loss weights [n_cls]: ``none`` (all 1) or ``inverse_sqrt`` (1/sqrt(class frequency)),
    scaled so the average weight over training images is 1. Rare classes (contempt, disgust) gain weight."""
    if scheme == "none":
        return torch.ones(n_cls)
    if scheme != "inverse_sqrt":
        raise UnknownNameError(f"unknown class_weighting {scheme!r}; use 'none' or 'inverse_sqrt'")
    counts = np.bincount(labels, minlength=n_cls).astype(np.float64)
    w = np.where(counts > 0, 1 / np.sqrt(np.maximum(counts, 1)), 0.0)
    w /= (w * counts).sum() / counts.sum()
    return torch.from_numpy(w).float()


def mix_batch(x: torch.Tensor, y: torch.Tensor, mixup_alpha: float, cutmix_alpha: float,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (blend two images) or CutMix (paste a box from another image) with targets mixed in proportion;
    one of the two per batch, chosen at random when both are on. Returns new tensors."""
    alphas = [a for a in (("mixup", mixup_alpha), ("cutmix", cutmix_alpha)) if a[1] > 0]
    if not alphas or len(x) < 2:
        return x, y
    kind, alpha = alphas[int(torch.randint(len(alphas), (1,), generator=gen))]
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(x), generator=gen)
    if kind == "mixup":
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
    h, w = x.shape[-2:]
    ch, cw = int(round(h * np.sqrt(1 - lam))), int(round(w * np.sqrt(1 - lam)))
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return out, lam * y + (1 - lam) * y[perm]


def _lr_at(step: float, total: float, warm: float, base: float) -> float:
    if step < warm:
        return base * step / max(warm, 1e-9)
    return 0.5 * base * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1e-9)))


def train(cfg: TrainConfig, out_dir: str | Path, data_path: str | Path | None = None) -> dict:
    """Train ``cfg`` into ``out_dir`` (resuming from ``out_dir/last.pt`` when present).

    Returns the summary written to ``out_dir/summary.json``: best validation accuracy, epoch, temperature.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    if cfg.tta_mode not in TTA_MODES:
        raise UnknownNameError(f"unknown tta {cfg.tta!r}; use one of {TTA_MODES}")
    if cfg.kd_weight and not cfg.teachers:
        raise UsageError("kd_weight > 0 needs teachers = [checkpoint paths]")
    if cfg.kd_targets not in ("online", "clean"):
        raise UnknownNameError(f"unknown kd_targets {cfg.kd_targets!r}; use 'online' or 'clean'")
    autocast = {"device_type": device.type, "dtype": torch.bfloat16, "enabled": resolve_bf16(cfg.bf16, device)}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_set, val_set = split_dataset(cfg, data_path)
    classes = train_set.classes
    if cfg.max_train_samples:
        train_set = train_set.subset(np.arange(min(cfg.max_train_samples, len(train_set))))
    n_main = len(train_set)
    for folder in cfg.extra_train:  # photos keep the detail of the network's input size (FER's 48 px are resized)
        extra = photo_training_set(folder, classes, cfg.extra_exclude, out, max(48, cfg.input_size))
        train_set = concat_sets(train_set, extra)
    draws = photo_draws(train_set.labels[n_main:], class_prior(train_set.targets[:n_main]), cfg.extra_sampling)
    log.info("train %d, val %d images, %d classes", len(train_set), len(val_set), len(classes))

    n_cls = len(classes)
    aux = aux_targets(train_set, cfg)
    n_out = n_cls + (0 if aux is None else aux.shape[1])
    model = build(cfg.arch, n_out, **cfg.arch_kwargs)
    x_all = to_input(train_set.pixels, cfg.input_size)
    last = out / "last.pt"
    resume = load_checkpoint(last, map_location=device) if last.exists() else None
    from_onnx = bool(cfg.init_checkpoint) and not cfg.init_checkpoint.endswith(".pt")  # batch norms folded away
    if resume:  # its weights replace any initialisation: only the record of where they came from is needed
        source = resume.source if resume.source is not None else {}
    elif from_onnx:
        source = init_from_onnx(model, cfg, classes)
    elif cfg.init_checkpoint:
        source = init_from_checkpoint(model, cfg.init_checkpoint, classes)
    else:
        source = init_pretrained(model, cfg, x_all)
    model = model.to(device).to(memory_format=torch.channels_last)
    frozen_bn = cfg.freeze_bn or from_onnx
    if device.type == "cuda":  # the faces live on the GPU and are augmented there: the CPU would starve it
        x_all = x_all.to(device)
    teacher = Teacher(cfg.teachers, classes, device) if cfg.kd_weight > 0 and cfg.kd_targets == "online" else None
    ema = copy.deepcopy(model).eval()
    opt = make_optimizer(model, cfg)
    aug_cfg = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()})
    start_epoch, best = 0, {"val_acc": -1.0, "epoch": -1}
    if resume:
        model.load_state_dict(resume.model)
        ema.load_state_dict(resume.ema)
        opt.load_state_dict(resume.opt)
        start_epoch, best = resume.epoch + 1, resume.best
        log.info("resumed from %s at epoch %d", last, start_epoch)

    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    prior = class_prior(train_set.targets)
    if draws is not None:  # what an epoch's draws average to, not the rows' shares
        photo_counts = np.bincount(train_set.labels[n_main:], weights=draws * (len(train_set) - n_main),
                                   minlength=n_cls)
        prior = class_prior((train_set.targets[:n_main].sum(0) + photo_counts)[None] / len(train_set))
    offset = prior_offset(cfg, prior).to(device)
    prior_t = torch.as_tensor(np.asarray(prior), dtype=torch.float32)
    y_soft = torch.from_numpy(train_set.targets if cfg.soft_labels else np.eye(n_cls, dtype=np.float32)[train_set.labels])
    y_soft = y_soft * (1 - cfg.label_smoothing) + cfg.label_smoothing * smoothing_target(offset.cpu())
    if cfg.kd_weight > 0 and cfg.kd_targets == "clean":
        kd = clean_teacher_probs(cfg.teachers, classes, train_set.pixels, out)
        kd = torch.from_numpy(match_prior(kd, y_soft.numpy()) if cfg.kd_match_prior else kd)
        y_soft = (1 - cfg.kd_weight) * y_soft + cfg.kd_weight * kd
    if aux is not None:  # mixed together with the labels, split again in the loss
        y_soft = torch.cat([y_soft, aux], dim=1)
    class_w = class_weights(train_set.labels, n_cls, cfg.class_weighting).to(device)
    metrics_path = out / "metrics.csv"
    params = [p for p in model.parameters() if p.requires_grad]

    epoch = start_epoch - 1
    while (epoch := epoch + 1) < cfg.epochs:
        gen.manual_seed(cfg.seed * 1000 + epoch)
        model.train()
        if frozen_bn:
            freeze_batchnorm(model)
        perm = torch.randperm(len(train_set), generator=gen)
        if draws is not None:  # the photos of this epoch, drawn with replacement, shuffled in among the FER faces
            picked = n_main + torch.multinomial(torch.from_numpy(draws), len(train_set) - n_main, replacement=True,
                                                generator=gen)
            perm = torch.cat([torch.arange(n_main), picked])[perm]
        weights = class_w if epoch >= cfg.drw_epoch else torch.ones_like(class_w)
        t0, loss_sum, seen = time.time(), 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, mininterval=5)
        for s in bar:
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            step = epoch * steps_per_epoch + s
            lr = _lr_at(step, total_steps, cfg.warmup_epochs * steps_per_epoch, cfg.lr)
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
            covered = torch.zeros(len(idx), dtype=torch.bool)
            x = normalize(augment(x_all[idx].clone(), aug_cfg, gen, covered))
            y = y_soft[idx]
            if cfg.cover_smoothing > 0 and covered.any():  # part of the face hidden: less sure of its expression
                y[covered, :n_cls] = (1 - cfg.cover_smoothing) * y[covered, :n_cls] + cfg.cover_smoothing * prior_t
            x, y = mix_batch(x, y, cfg.mixup_alpha, cfg.cutmix_alpha, gen)
            x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
            y, y_aux = y[:, :n_cls], y[:, n_cls:]
            if teacher is not None:
                y = (1 - cfg.kd_weight) * y + cfg.kd_weight * teacher.probs(x, autocast)

            def closure() -> torch.Tensor:
                with torch.autocast(**autocast):
                    logits = model(x).float()
                loss = -(y * weights * F.log_softmax(logits[:, :n_cls] + offset, dim=1)).sum(1).mean()
                if y_aux.shape[1]:  # faces without FER+ votes have all-zero rows and add nothing
                    loss = loss + cfg.aux_ferplus_weight * -(y_aux * F.log_softmax(logits[:, n_cls:], dim=1)).sum(1).mean()
                loss.backward()
                return loss

            if cfg.sam_rho > 0:
                loss = sam_step(params, closure, opt, cfg.sam_rho)
            else:
                opt.zero_grad(set_to_none=True)
                loss = closure()
                opt.step()
            with torch.no_grad():
                d = min(cfg.ema_decay, (1 + step) / (10 + step))
                for pe, pm in zip(ema.state_dict().values(), model.state_dict().values()):
                    if pe.dtype.is_floating_point:
                        pe.mul_(d).add_(pm.detach(), alpha=1 - d)
                    else:
                        pe.copy_(pm)
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{lr:.4f}", refresh=False)
        val_logits = predict_logits(ema, val_set.pixels, cfg.input_size)[:, :n_cls]
        val_acc = float(((val_logits + offset.cpu().numpy()).argmax(1) == val_set.labels).mean())  # training prior
        # balanced decision (no prior offset)
        val_uar = classification_metrics(val_set.labels, val_logits.argmax(1), val_set.classes)["uar"]
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "val_acc": val_acc, "val_uar": val_uar,
               "lr": lr, "seconds": time.time() - t0}
        log.info("epoch %d: loss %.4f val_acc %.4f val_uar %.4f (%.0fs)", epoch + 1, row["train_loss"], val_acc,
                 val_uar, row["seconds"])
        if epoch == 0 and cfg.max_seconds > 0 and cfg.epochs * row["seconds"] > cfg.max_seconds:
            cfg = replace(cfg, epochs=max(1, int(cfg.max_seconds / row["seconds"])))  # the cosine ends in time
            total_steps = cfg.epochs * steps_per_epoch
            log.info("max_seconds %.0f: %d epochs of %.0f s fit", cfg.max_seconds, cfg.epochs, row["seconds"])
        write_header = not metrics_path.exists()
        with open(metrics_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if write_header:
                w.writeheader()
            w.writerow(row)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        score = {"acc": val_acc, "uar": val_uar}[cfg.select_metric]
        if score > best.get("score", best["val_acc"]):
            best = {"val_acc": val_acc, "val_uar": val_uar, "score": score, "epoch": epoch + 1}
            Checkpoint(asdict(cfg), classes, ema=with_offset(ema, drop_extra_outputs(ema, n_cls), offset.cpu()),
                       epoch=epoch + 1, val_acc=val_acc, val_uar=val_uar, class_prior=prior.tolist(),
                       pretrained=source).save(out / "best.pt")
        Checkpoint(asdict(cfg), model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), epoch=epoch,
                   best=best, source=source).save(last)

    summary = {"best_val_acc": best["val_acc"], "best_val_uar": best.get("val_uar"), "best_epoch": best["epoch"],
               "select_metric": cfg.select_metric, "params": count_params(model),
               "train_images": len(train_set), "val_images": len(val_set), "device": device.type,
               "train_seconds": _total_seconds(metrics_path)}
    summary.update(calibrate(out, val_set))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def aux_targets(train_set: FaceSet, cfg: TrainConfig) -> torch.Tensor | None:
    """FER+ vote distributions [N, 8] for the auxiliary head, or None when ``aux_ferplus_weight`` is 0.

    Multi-task training: the original FER2013 label is one annotator's call, the FER+ votes are ten; learning
    both from the same features gives the 7-way head a cleaner signal. Only the 7-way head is kept.
    """
    if cfg.aux_ferplus_weight <= 0:
        return None
    if cfg.protocol != "fer2013" or train_set.aux is None:
        raise UsageError("aux_ferplus_weight needs protocol = 'fer2013' and data with FER+ votes "
                         "(fer2013_dev.npz, or fer2013.csv with fer2013new.csv)")
    return torch.from_numpy(train_set.aux)


def init_pretrained(model: torch.nn.Module, cfg: TrainConfig, x_all: torch.Tensor) -> dict:
    """Load ``cfg.pretrained`` (a faceres folder) into a ``faceres_mobilenet`` and re-inflate its batch norms on
    256 training faces; returns the weights' source record for the checkpoint ({} without pretraining)."""
    if not cfg.pretrained:
        return {}
    from openfer.train.faceres import FaceresMobileNet, load_faceres, reinflate_batchnorm

    if not isinstance(model, FaceresMobileNet):
        raise UsageError(f"pretrained = {cfg.pretrained!r} needs arch = 'faceres_mobilenet', not {cfg.arch!r}")
    source = load_faceres(model, cfg.pretrained)
    sample = normalize(x_all[torch.randperm(len(x_all), generator=torch.Generator().manual_seed(0))[:256]])
    reinflate_batchnorm(model, list(sample.split(64)))
    return source


def init_from_checkpoint(model: torch.nn.Module, path: str, classes: tuple[str, ...] = ()) -> dict:
    """Load a ``best.pt``'s weights into ``model`` (a second training stage) and return its source record.

    A checkpoint trained with a balanced objective stores training-prior logits (``with_offset``); that offset is
    subtracted again, so training resumes from the balanced logits the new objective adds its own prior to.
    When ``classes`` differ from the checkpoint's (a FER+ network starting a ``fer2013`` run), the last layer's
    rows are taken by class name; a class the checkpoint lacks keeps its fresh initialisation.
    """
    ck = load_checkpoint(path)
    state = dict(ck.ema)
    prev = TrainConfig(**{k: v for k, v in ck.config.items() if k in TrainConfig.__dataclass_fields__})
    if ck.class_prior is not None:
        state = with_offset(model, state, -prior_offset(prev, np.asarray(ck.class_prior)))
    if classes and tuple(ck.classes) != tuple(classes):
        state = remap_head(model, state, tuple(ck.classes), tuple(classes))
    model.load_state_dict(state)
    return {**(ck.pretrained or {}), "init_checkpoint": str(path), "init_val_acc": ck.val_acc,
            "init_val_uar": ck.val_uar}


def init_from_onnx(model: torch.nn.Module, cfg: TrainConfig, classes: tuple[str, ...] = ()) -> dict:
    """Load network ``cfg.init_member`` of ``cfg.init_checkpoint`` (an exported ``.onnx`` or a registered model's
    name) into ``model`` and return its source record. As for a checkpoint, the last layer's rows are taken by
    class name, and the prior offset of a balanced objective is taken out (at this run's ``balance_tau``) where a
    single-network export declares its ``class_prior``; a merged file's prior is not its members', so a network
    taken from one keeps its logits as they are."""
    from openfer.train.onnx_init import onnx_state
    from openfer.zoo.registry import resolve_model, sha256_file

    spec, path = resolve_model(cfg.init_checkpoint)
    meta = metadata(path)
    state = onnx_state(model, path, cfg.init_member)
    if meta.get("class_prior") and not cfg.init_member:
        state = with_offset(model, state, -prior_offset(cfg, np.asarray(json.loads(meta["class_prior"]))))
    if classes and tuple(spec.classes) != tuple(classes):
        state = remap_head(model, state, tuple(spec.classes), tuple(classes))
    model.load_state_dict(state)
    source = {"init_onnx": str(cfg.init_checkpoint), "init_member": cfg.init_member,
              "init_sha256": sha256_file(path)}
    if meta.get("pretrained"):
        source["pretrained"] = json.loads(meta["pretrained"])
    return source


def photo_training_set(folder: str | Path, classes: tuple[str, ...], exclude: list[str], out: Path,
                       size: int = 48) -> FaceSet:
    """The person-disjoint ``train`` part of a labelled photo folder as ``size`` px grey training crops: CenterFace's
    best face per photo aligned to the FER2013 template (what ``Analyzer`` feeds a model of that input size),
    one-hot targets.

    Photos without a face and classes in ``exclude`` or unknown to the model are dropped; detections are cached
    in ``out/detections-<folder>.npz``. The ``val`` and ``test`` people stay unseen (``openfer.crossdomain``).
    """
    from openfer.crossdomain import detect_photos, load_photo_set, photo_crops
    from openfer.detect import load_detector

    photos = load_photo_set(folder, "train", min_images=1)  # rare classes too: scoring needs 50, training not
    found = detect_photos(photos, load_detector("centerface"), out / f"detections-{Path(folder).name}.npz")
    pixels = photo_crops(photos, found, size, 1)
    names = [photos.classes[i] for i in photos.labels[found.found]]
    keep = np.array([n in classes and n not in exclude for n in names], bool)
    labels = np.array([classes.index(n) for n, k in zip(names, keep) if k], np.int64)
    log.info("%s: %d training photos (%d without a face, %d of excluded classes)", folder, len(labels),
             int((~found.found).sum()), int((~keep).sum()))
    return FaceSet(pixels[keep], labels, np.eye(len(classes), dtype=np.float32)[labels], classes)


def concat_sets(a: FaceSet, b: FaceSet) -> FaceSet:
    """Rows of ``a`` then ``b`` (same classes); crops of different sizes are brought to the larger (bilinear), so
    48 px FER faces can join photo crops made at a network's larger input size; an auxiliary target of ``a`` gets
    zero rows."""
    if a.classes != b.classes:
        raise ValueError(f"cannot join sets of classes {a.classes} / {b.classes}")
    side = max(a.pixels.shape[1], b.pixels.shape[1])
    pixels = [p if p.shape[1:] == (side, side) else
              np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_LINEAR) for f in p])
              for p in (a.pixels, b.pixels)]
    aux = None if a.aux is None else np.concatenate([a.aux, np.zeros((len(b), a.aux.shape[1]), a.aux.dtype)])
    return FaceSet(np.concatenate(pixels), np.concatenate([a.labels, b.labels]),
                   np.concatenate([a.targets, b.targets]), a.classes, aux)


def with_offset(model: torch.nn.Module, state: dict, offset: torch.Tensor) -> dict:
    """``state`` (of ``model``) with ``offset`` [C] added to the final linear layer's bias, so the saved network
    outputs the training-prior logits that a balanced objective trained it towards (see ``prior_offset``)."""
    if not offset.abs().sum():
        return state
    name = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    key = f"{name}.bias"
    return {**state, key: state[key] + offset.to(state[key].dtype)}


def remap_head(model: torch.nn.Module, state: dict, old: tuple[str, ...], new: tuple[str, ...]) -> dict:
    """``state`` with its final linear layer's rows reordered from classes ``old`` to ``new`` by name; rows of
    classes not in ``old`` come from ``model``'s own (fresh) layer."""
    if not set(new) & set(old):
        raise UsageError(f"init_checkpoint predicts {list(old)}: no class in common with {list(new)}")
    name = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    fresh = model.state_dict()
    out = dict(state)
    for key in (f"{name}.weight", f"{name}.bias"):
        rows = fresh[key].clone()
        for i, c in enumerate(new):
            if c in old:
                rows[i] = state[key][old.index(c)]
        out[key] = rows
    return out


def drop_extra_outputs(model: torch.nn.Module, n_cls: int) -> dict:
    """``model``'s state dict with its final linear layer cut to the first ``n_cls`` outputs (the auxiliary head's
    rows dropped), so the checkpoint loads into the plain architecture that ``openfer export`` builds."""
    state = dict(model.state_dict())
    name = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    for key in (f"{name}.weight", f"{name}.bias"):
        if key in state:
            state[key] = state[key][:n_cls].clone()
    return state


def _total_seconds(metrics_path: Path) -> float:
    """Training time summed over the epochs logged in ``metrics.csv`` (resumed runs included)."""
    with open(metrics_path, newline="") as f:
        return round(sum(float(r["seconds"]) for r in csv.DictReader(f)), 1)


def split_dataset(cfg: TrainConfig, data_path: str | Path | None = None) -> tuple[FaceSet, FaceSet]:
    """(train, validation) sets of a run with ``cfg``: the validation split is carved from ``cfg.train_split``,
    stratified, deterministic for ``cfg.split_seed`` (so it can be rebuilt after training)."""
    full = load_dataset(data_path, cfg.train_split, cfg.protocol, size=cfg.input_size)
    tr_idx, va_idx = split_rows(full.labels, cfg.protocol, cfg.val_fraction, cfg.split_seed, cfg.val_rows,
                                data_path, cfg.train_split)
    return full.subset(tr_idx), full.subset(va_idx)


def validation_set(cfg: TrainConfig, data_path: str | Path | None = None) -> FaceSet:
    """The validation split a run with ``cfg`` carved from Training (same seed, same rows)."""
    return split_dataset(cfg, data_path)[1]


def calibrate(run_dir: str | Path, val_set: FaceSet) -> dict:
    """Fit the softmax temperature of ``run_dir/best.pt`` on the validation split (with the config's flip TTA)
    and store it in the checkpoint; returns validation accuracy/NLL before and after."""
    path = Path(run_dir) / "best.pt"
    ck = load_checkpoint(path)
    cfg = TrainConfig(**ck.config)
    tta = cfg.tta_mode
    logits = predict_logits(ck.build_model(), val_set.pixels, cfg.input_size, tta=tta)
    t = fit_temperature(logits, val_set.labels)
    lt, yt = torch.from_numpy(logits), torch.from_numpy(val_set.labels)
    ck.temperature = t
    ck.save(path)
    return {"temperature": t, "tta": tta, "val_acc_final": float((logits.argmax(1) == val_set.labels).mean()),
            "val_nll_t1": F.cross_entropy(lt, yt).item(), "val_nll_calibrated": F.cross_entropy(lt / t, yt).item()}
