"""Training a PRM on image-level labels (PRM's recipe) and listing a COCO file's labelled images."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rem_core.io import CocoFile
from rem_models.cim.dataset import category_order, image_labels, read_rgb
from rem_models.cim.prm import PrmModel, preprocess
from rem_models.engine.dataset import image_path


@dataclass(frozen=True)
class LabelledImage:
    """An image file and its (C,) bool image-level labels."""

    image_id: int
    path: Path
    labels: np.ndarray


def labelled_images(coco: CocoFile, image_dir: Path) -> list[LabelledImage]:
    """Every image of ``coco`` (sorted by id) with the classes annotated in it; class c is
    ``category_order(coco)[c]``. Images without annotations are kept as negatives."""
    cats = category_order(coco)
    return [
        LabelledImage(
            i,
            image_path(coco.imgs[i], image_dir, f"image id {i}", coco.path),
            image_labels(coco, i, cats),
        )
        for i in sorted(coco.imgs)
    ]


@dataclass(frozen=True)
class PrmTrainSettings:
    """PRM's recipe: SGD momentum 0.9, weight decay 1e-4, lr 0.01 for the classifier and
    0.01 x ``backbone_lr_factor`` for the backbone, batches of 16, random horizontal flips.
    13,000 iterations is about 20 epochs of VOC train_aug (10,582 images)."""

    iterations: int = 13_000
    batch_size: int = 16
    lr: float = 0.01
    backbone_lr_factor: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    flip: bool = True
    seed: int = 0


def _batches(n: int, size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless batches of indices from fresh permutations (one epoch after another)."""
    stream = np.zeros(0, dtype=np.int64)
    while True:
        while len(stream) < size:
            stream = np.concatenate([stream, rng.permutation(n)])
        yield stream[:size]
        stream = stream[size:]


def train_prm(
    model: PrmModel,
    images: Sequence[LabelledImage],
    settings: PrmTrainSettings,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place with the multilabel soft-margin loss on the peak-mean logits;
    returns the per-iteration losses. Deterministic for a seed on the CPU."""
    if not images:
        raise ValueError("no training images")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    device = next(model.parameters()).device
    head = [p for name, p in model.named_parameters() if not name.startswith("features.")]
    optimizer = torch.optim.SGD(
        [
            {
                "params": model.features.parameters(),
                "lr": settings.lr * settings.backbone_lr_factor,
            },
            {"params": head, "lr": settings.lr},
        ],
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    model.train()
    history = []
    batches = _batches(len(images), min(settings.batch_size, len(images)), rng)
    for it in range(settings.iterations):
        chosen = [images[i] for i in next(batches)]
        flips = rng.random(len(chosen)) < 0.5 if settings.flip else [False] * len(chosen)
        x = torch.stack(
            [
                preprocess(read_rgb(im.path), model.input_size, bool(f))
                for im, f in zip(chosen, flips, strict=True)
            ]
        ).to(device)
        y = torch.as_tensor(np.stack([im.labels for im in chosen]), dtype=torch.float32)
        loss = F.multilabel_soft_margin_loss(model(x), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        if on_step is not None:
            on_step(it, history[-1])
    model.eval()
    return history
