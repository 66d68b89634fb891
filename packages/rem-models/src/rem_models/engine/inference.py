"""Running a model over images and writing COCO results (compressed RLE, dataset category ids).

Models that want resized inputs (ViTDet: long side 1024) get them here and are asked for
results at the original size through ``output_sizes``. Model outputs follow the family contract: per image ``boxes`` (N, 4) XYXY pixels, ``scores``
(N,), ``labels`` (N,) contiguous 0-based, ``masks`` (N, H, W) or (N, 1, H, W) as probabilities
(foreground above 0.5) or booleans, all in the input image's pixel frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from rem_core import masks as mask_ops
from rem_models.engine.categories import CategoryMap
from rem_models.engine.dataset import collate
from rem_models.engine.distributed import DistInfo, all_gather_objects
from rem_models.engine.sampler import shard_indices


def binary_masks(masks: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(N, H, W) bool masks from a model's (N, H, W) / (N, 1, H, W) probabilities or booleans."""
    if masks.ndim == 4:
        masks = masks[:, 0]
    if masks.shape[-2:] != (height, width):
        raise ValueError(
            f"the model returned masks of size {tuple(masks.shape[-2:])} for an image of "
            f"size {(height, width)}; masks must be in the input image's pixel frame"
        )
    if masks.dtype == torch.bool:
        return masks.cpu().numpy()
    if masks.dtype.is_floating_point:
        return (masks.float() > 0.5).cpu().numpy()
    return (masks != 0).cpu().numpy()


def to_coco_results(
    output: Mapping[str, torch.Tensor],
    image_id: int,
    height: int,
    width: int,
    categories: CategoryMap,
    *,
    score_threshold: float = 0.0,
) -> list[dict[str, Any]]:
    """One image's detections as COCO results: ``bbox`` XYWH, ``segmentation`` compressed RLE."""
    scores = output["scores"].detach().float().cpu()
    keep = (scores >= score_threshold).nonzero().flatten()
    if keep.numel() == 0:
        return []
    boxes = output["boxes"].detach().float().cpu()[keep].tolist()
    labels = output["labels"].detach().cpu()[keep].tolist()
    kept_scores = scores[keep].tolist()
    masks = None
    if output.get("masks") is not None:
        masks = binary_masks(
            output["masks"].detach()[keep.to(output["masks"].device)], height, width
        )
    results = []
    for k, (box, label, score) in enumerate(zip(boxes, labels, kept_scores)):
        x0, y0, x1, y1 = box
        det: dict[str, Any] = {
            "image_id": image_id,
            "category_id": categories.to_category_id(int(label)),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": score,
        }
        if masks is not None:
            det["segmentation"] = mask_ops.encode(masks[k])
        results.append(det)
    return results


def inference_long_side(model: nn.Module) -> int | None:
    """The long side a model wants its inference inputs resized to, or None (no resize).

    A model states it as ``inference_long_side``; ViTDet-style models that pad to a fixed
    square (``square_pad``) are fed images whose long side is that square.
    """
    side = getattr(model, "inference_long_side", None)
    if side is None:
        side = getattr(model, "square_pad", None)
    return int(side) if side else None


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize a (3, H, W) 0-255 image so its long side is ``long_side``.

    As detectron2's ``ResizeShortestEdge(L, max_size=L)`` at test time: scale ``L / max(H, W)``,
    output sizes ``int(x * scale + 0.5)``, PIL bilinear on uint8 pixels.
    """
    h, w = int(image.shape[1]), int(image.shape[2])
    scale = long_side / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    if (new_h, new_w) == (h, w):
        return image
    pixels = image.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    resized = Image.fromarray(pixels).resize((new_w, new_h), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(resized)).permute(2, 0, 1).float()


class _ResizedForModel(torch.utils.data.Dataset):
    """Items of ``inner`` with the image resized for the model (in the loader's workers)."""

    def __init__(self, inner: torch.utils.data.Dataset, long_side: int) -> None:
        self.inner, self.long_side = inner, long_side

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, info = self.inner[i]
        return resize_long_side(image, self.long_side), info


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def autocast(device: torch.device, enabled: bool, dtype: str = "bfloat16") -> Any:
    """Mixed precision on CUDA (bf16 by default); a no-op elsewhere."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=getattr(torch, dtype))


@torch.inference_mode()
def predict_dataset(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    categories: CategoryMap,
    device: torch.device,
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    amp: bool = True,
    score_threshold: float = 0.0,
    dist_info: DistInfo | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """COCO results for every image of ``dataset`` (items ``(image, info)``, see ImageFiles).

    With several processes each predicts every ``world_size``-th image and the main process
    receives all results (others get an empty list), ordered by dataset position.
    """
    info = dist_info or DistInfo()
    net = unwrap(model)
    was_training = net.training
    net.eval()
    indices = shard_indices(len(dataset), info.world_size, info.rank)
    long_side = inference_long_side(net)
    source = dataset if long_side is None else _ResizedForModel(dataset, long_side)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(source, indices),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate,
    )
    mine: list[tuple[int, list[dict[str, Any]]]] = []
    position = iter(indices)
    try:
        for images, metas in loader:
            inputs = [im.to(device, non_blocking=True) for im in images]
            with autocast(device, amp):
                if long_side is None:
                    outputs = net(inputs)
                else:  # results at the original size
                    outputs = net(inputs, output_sizes=[(m["height"], m["width"]) for m in metas])
            for meta, out in zip(metas, outputs):
                dets = to_coco_results(
                    out,
                    meta["image_id"],
                    meta["height"],
                    meta["width"],
                    categories,
                    score_threshold=score_threshold,
                )
                mine.append((next(position), dets))
            if on_batch is not None:
                on_batch(len(images))
    finally:
        net.train(was_training)
    gathered = all_gather_objects(mine) if info.distributed else [mine]
    if not info.is_main:
        return []
    ordered = sorted((pair for part in gathered for pair in part), key=lambda p: p[0])
    return [det for _, dets in ordered for det in dets]
