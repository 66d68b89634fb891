"""The SeqTR network: composition of the visual encoder, language encoder, fusion and head."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rem_models.seqtr.sequences import (
    box_token_targets,
    dequantize,
    mask_token_targets,
    rasterize,
    shuffle_points,
    tokens_to_polygon,
)


class SeqTR(nn.Module):
    """Referring grounding as coordinate tokens.

    Inputs (network frame, after the caller's resize): ``images`` (B, 3, H, W) float RGB 0-255
    (not normalised, as SeqTR), each image in the top-left corner of the batch; ``image_sizes``
    [(h, w)] of the valid content; ``token_ids`` (B, T) word ids, 0 = pad. Each image's padded
    frame is (ceil32(h), ceil32(w)); coordinates are quantised relative to it.

    Training (``targets`` given): ``{"boxes": (B, 4) XYXY}`` for the box task or
    ``{"points": (B, R, 2) (x, y), "point_valid": (B, R) bool}`` for the mask task, in network
    pixels; returns ``{"loss": scalar}``.
    Inference: a list of dicts, per image, ``tokens`` (list[int]), ``box`` (4,) XYXY float in
    network pixels (box task) or ``polygon`` (flat list, network pixels) and ``mask``
    ((pad_h, pad_w) bool, pycocotools rasterisation) for the mask task.
    """

    def __init__(
        self,
        vis_enc: nn.Module,
        lan_enc: nn.Module,
        fusion: nn.Module,
        head: nn.Module,
        *,
        task: str,
        num_ray: int,
        shuffle_fraction: float = -1.0,
        size_divisor: int = 32,
        input_size: int = 640,
    ) -> None:
        super().__init__()
        self.vis_enc = vis_enc
        self.lan_enc = lan_enc
        self.fusion = fusion
        self.head = head
        self.task = task
        self.num_ray = num_ray
        self.shuffle_fraction = shuffle_fraction
        self.size_divisor = size_divisor
        self.input_size = input_size
        # contour shuffles draw from here; None = the global torch RNG (training snapshots it)
        self.generator: torch.Generator | None = None

    def pad_sizes(self, image_sizes: list[tuple[int, int]]) -> torch.Tensor:
        """(B, 2) padded frames as (W, H)."""
        d = self.size_divisor
        return torch.tensor(
            [[-(-w // d) * d, -(-h // d) * d] for h, w in image_sizes], dtype=torch.float32
        )

    def _features(
        self, images: torch.Tensor, image_sizes: list[tuple[int, int]], token_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fused map (B, C, h, w), its pad mask (B, h, w), tanh(sentence) (B, C)."""
        d = self.size_divisor
        b, _, hh, ww = images.shape
        if hh % d or ww % d:
            images = F.pad(images, (0, -(-ww // d) * d - ww, 0, -(-hh // d) * d - hh))
        sentence = self.lan_enc(token_ids)
        x = self.fusion(self.vis_enc(images), sentence)
        valid = images.new_zeros((b, 1, images.shape[2], images.shape[3]))
        for i, (h, w) in enumerate(image_sizes):
            valid[i, :, :h, :w] = 1
        # nearest downsampling of the padding mask, as SeqTR's F.interpolate default
        pad_mask = F.interpolate(1 - valid, size=x.shape[-2:]).bool()[:, 0]
        return x, pad_mask, torch.tanh(sentence)

    def forward(
        self,
        images: torch.Tensor,
        image_sizes: list[tuple[int, int]],
        token_ids: torch.Tensor,
        targets: dict[str, torch.Tensor] | None = None,
    ) -> Any:
        x, pad_mask, language = self._features(images, image_sizes, token_ids)
        pad_wh = self.pad_sizes(image_sizes).to(x.device)
        num_bins = self.head.num_bins
        if targets is not None:
            if self.task == "box":
                tokens = box_token_targets(targets["boxes"], pad_wh, num_bins)
            else:
                valid = targets["point_valid"].bool()
                tokens = mask_token_targets(targets["points"], valid, pad_wh, num_bins)
                if self.training and self.shuffle_fraction > 0:
                    body = shuffle_points(
                        tokens[:, :-1], valid, self.shuffle_fraction, self.generator
                    )
                    tokens = torch.cat([body, tokens[:, -1:]], dim=1)
            return {"loss": self.head.loss(x, pad_mask, tokens, language)}
        tokens = self.head.generate(x, pad_mask, language)
        results = []
        for i in range(tokens.shape[0]):
            row = tokens[i].tolist()
            w, h = (float(v) for v in pad_wh[i].tolist())
            if self.task == "box":
                box = dequantize(tokens[i : i + 1], pad_wh[i : i + 1], num_bins)[0]
                results.append({"tokens": row, "box": box.cpu()})
            else:
                polygon = tokens_to_polygon(row, (w, h), num_bins)
                mask = rasterize(polygon, int(h), int(w))
                results.append({"tokens": row, "polygon": polygon, "mask": mask})
        return results


def mask_to_targets(masks: list[np.ndarray], num_ray: int) -> dict[str, torch.Tensor]:
    """Training targets of the mask task from (H, W) masks in network pixels."""
    from rem_models.seqtr.sequences import contour_points

    points = torch.zeros((len(masks), num_ray, 2))
    valid = torch.zeros((len(masks), num_ray), dtype=torch.bool)
    for i, m in enumerate(masks):
        p = torch.from_numpy(contour_points(m, num_ray))
        points[i, : len(p)] = p
        valid[i, : len(p)] = True
    return {"points": points, "point_valid": valid}
