"""LAVT's training recipe: weighted cross-entropy, AdamW with LAVT's groups, poly schedule.

Reference (``train.py``): CE with class weights [0.9, 1.1]; AdamW lr 5e-5, weight decay 1e-2
except backbone parameters named ``*norm*`` or relative-position bias tables; lr multiplied by
``(1 - step / total) ** 0.9`` every iteration; 40 epochs, batch 8 per GPU x 4; 480 x 480 inputs;
one random sentence per ref.

BERT: the reference hands only ``encoder.layer[0..9]`` to the optimiser, so BERT's embeddings
and its last two layers keep their pretrained values, apparently by accident. ``bert_layers=
"reference"`` (the default, to reproduce the released models) freezes exactly those; ``"all"``
trains the whole of BERT and ``"none"`` freezes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.data import DataLoader

from rem_models.lavt.data import ReferringDataset
from rem_models.lavt.model import LAVT

CLASS_WEIGHTS = (0.9, 1.1)
REFERENCE_BERT_LAYERS = 10  # train.py optimises encoder.layer[i] for i in range(10)

BertLayers = Literal["reference", "all", "none"]


class LavtTrainConfig(BaseModel):
    """LAVT's published recipe (``train.py`` defaults and README command)."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    amsgrad: bool = False
    epochs: int = Field(40, gt=0)
    batch_size: int = Field(32, gt=0, description="total: 8 per GPU x 4 GPUs")
    poly_power: float = Field(0.9, gt=0)
    image_size: int = Field(480, gt=0)
    class_weights: tuple[float, float] = CLASS_WEIGHTS
    bert_layers: BertLayers = "reference"
    seed: int = 0
    workers: int = Field(0, ge=0)


def lavt_loss(
    logits: Tensor, targets: Tensor, class_weights: tuple[float, float] = CLASS_WEIGHTS
) -> Tensor:
    """Weighted cross-entropy of (B, 2, H, W) logits against (B, H, W) {0, 1} targets.

    PyTorch's weighted mean: sum(w[t] * nll) / sum(w[t]) over every pixel.
    """
    weight = torch.tensor(class_weights, dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, targets, weight=weight)


def set_bert_trainable(model: LAVT, mode: BertLayers) -> None:
    """Choose which BERT parameters train (see the module docstring)."""
    bert = model.text_encoder.bert
    if mode == "all":
        bert.requires_grad_(True)
        return
    bert.requires_grad_(False)
    if mode == "reference":
        for layer in list(model.text_encoder.encoder_layers())[:REFERENCE_BERT_LAYERS]:
            layer.requires_grad_(True)
    elif mode != "none":
        raise ValueError(f"bert_layers must be reference, all or none, got {mode!r}")


def no_decay(name: str) -> bool:
    """LAVT's exemption: backbone norms and relative-position bias tables (not decoder BNs)."""
    return name.startswith("backbone.") and (
        "norm" in name or "relative_position_bias_table" in name
    )


def param_groups(model: LAVT, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: LAVT's no-decay parameters, and every other trainable one."""
    exempt, decayed = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (exempt if no_decay(name) else decayed).append(param)
    return [
        {"params": exempt, "weight_decay": 0.0},
        {"params": decayed, "weight_decay": weight_decay},
    ]


def poly_factor(step: int, total: int, power: float = 0.9) -> float:
    """LAVT's per-iteration lr factor ``(1 - step / total) ** power`` (0 at the end)."""
    return max(0.0, 1.0 - step / total) ** power


def build_optimizer(
    model: LAVT, config: LavtTrainConfig, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`param_groups` with the poly schedule (after :func:`set_bert_trainable`)."""
    set_bert_trainable(model, config.bert_layers)
    optimizer = torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        weight_decay=config.weight_decay,
        amsgrad=config.amsgrad,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: poly_factor(step, total_steps, config.poly_power)
    )
    return optimizer, schedule


def _batches(dataset: ReferringDataset, config: LavtTrainConfig, epoch: int) -> Iterator[dict]:
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=len(dataset) >= config.batch_size,  # LAVT drops the last partial batch
        num_workers=config.workers,
        generator=generator,
    )
    yield from loader


@dataclass
class TrainState:
    """Where a run stands between epochs: enough to resume it exactly (see :func:`train_lavt`)."""

    epoch: int  # epochs completed
    losses: list[float]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    torch_rng: Tensor


def train_lavt(
    model: LAVT,
    dataset: ReferringDataset,
    config: LavtTrainConfig,
    *,
    device: str | torch.device = "cpu",
    on_step: Callable[[int, float, float], None] | None = None,
    on_epoch: Callable[[TrainState], None] | None = None,
    resume: TrainState | None = None,
) -> list[float]:
    """Train ``model`` on ``dataset`` with LAVT's recipe; returns the loss of every step.

    ``on_step(step, loss, lr)`` follows each optimiser step and ``on_epoch(state)`` each epoch;
    passing a saved ``state`` back as ``resume`` continues the run where it stopped (with the
    model weights it had then). Deterministic for a seed on the CPU: sentence draws and
    shuffling are seeded by (seed, epoch), and the torch RNG (drop path, dropout) is carried
    in the state, so a resumed run takes the same steps as an uninterrupted one.
    """
    per_epoch = max(1, len(dataset) // config.batch_size)
    total = per_epoch * config.epochs
    optimizer, schedule = build_optimizer(model, config, total)
    model.to(device).train()
    if resume is None:
        torch.manual_seed(config.seed)
        losses: list[float] = []
        first = 0
    else:
        optimizer.load_state_dict(resume.optimizer)
        schedule.load_state_dict(resume.schedule)
        torch.set_rng_state(resume.torch_rng)
        losses, first = list(resume.losses), resume.epoch
    for epoch in range(first, config.epochs):
        for batch in _batches(dataset, config, epoch):
            logits = model(
                batch["image"].to(device),
                batch["token_ids"].to(device),
                batch["attention_mask"].to(device),
            )
            loss = lavt_loss(logits, batch["target"].to(device), config.class_weights)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at step {len(losses)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(len(losses), losses[-1], optimizer.param_groups[1]["lr"])
        if on_epoch is not None:
            on_epoch(
                TrainState(
                    epoch + 1,
                    list(losses),
                    optimizer.state_dict(),
                    schedule.state_dict(),
                    torch.get_rng_state(),
                )
            )
    model.eval()
    return losses


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that will train, in module order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]
