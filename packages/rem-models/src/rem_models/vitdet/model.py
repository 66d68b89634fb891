"""ViTDet Mask R-CNN: ViT + simple feature pyramid, RPN, standard ROI heads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.vitdet.postprocess import detector_postprocess
from rem_models.vitdet.roi_heads import ROIHeads
from rem_models.vitdet.rpn import RPN
from rem_models.vitdet.sfp import SimpleFeaturePyramid


class VitDetMaskRCNN(nn.Module):
    """Mask R-CNN with a plain-ViT backbone (Li et al., 2022), equivalent to detectron2's
    ``GeneralizedRCNN`` built from the ViTDet configs, in the torchvision detection contract.

    ``model(images, targets=None, output_sizes=None)``

    - ``images``: list of (3, H, W) float tensors, RGB, values 0-255, already resized (ViTDet
      resizes the long side to 1024). Each is normalised with ``pixel_mean`` / ``pixel_std``,
      then zero-padded at the bottom/right to ``square_pad`` x ``square_pad`` (or, with
      ``square_pad`` 0, to the batch's largest size rounded up to ``size_divisibility``).
    - ``targets`` (training only): one dict per image with ``boxes`` (G, 4) float XYXY in
      that image's pixels, ``labels`` (G,) int64 in [0, num_classes) and ``masks`` (G, H, W)
      uint8 or bool. Images without objects have G = 0.
    - ``output_sizes`` (inference only, optional): one (H_out, W_out) per image, the size to
      report results at, e.g. the original image size before resizing (detectron2's
      ``height`` / ``width``). Defaults to each input's own (H, W).

    Training mode returns a dict of scalar losses: ``loss_cls``, ``loss_box_reg``,
    ``loss_mask``, ``loss_rpn_cls``, ``loss_rpn_loc``. The only randomness is the sampling of
    anchors and ROIs from the global torch RNG (and drop-path, when configured).

    Evaluation mode returns one dict per image: ``boxes`` (D, 4) float XYXY in output-size
    pixels, ``scores`` (D,), ``labels`` (D,) int64 in [0, num_classes), ``masks``
    (D, H_out, W_out) bool. D <= ``detections_per_image``, highest score first.

    The parts are injected: ``backbone`` maps padded images to pyramid features,
    ``rpn_features`` / ``roi_features`` name the levels each stage uses.
    """

    def __init__(
        self,
        backbone: SimpleFeaturePyramid,
        rpn: RPN,
        roi_heads: ROIHeads,
        *,
        pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
        pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
        square_pad: int = 1024,
        size_divisibility: int = 32,
        rpn_features: Sequence[str] = ("p2", "p3", "p4", "p5", "p6"),
        roi_features: Sequence[str] = ("p2", "p3", "p4", "p5"),
        mask_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        # Not persistent: detectron2 checkpoints do not store them either.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.square_pad = square_pad
        self.size_divisibility = size_divisibility
        self.rpn_features = list(rpn_features)
        self.roi_features = list(roi_features)
        self.mask_threshold = mask_threshold

    def preprocess(self, images: Sequence[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """Normalise and pad ``images`` into a (N, 3, S, S) batch; returns it and the (H, W)
        of each image inside it."""
        if not images:
            raise ValueError("expected at least one image")
        sizes = []
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(f"images[{i}] must be (3, H, W), got {tuple(image.shape)}")
            sizes.append((int(image.shape[1]), int(image.shape[2])))
        if self.square_pad > 0:
            too_big = [i for i, (h, w) in enumerate(sizes) if max(h, w) > self.square_pad]
            if too_big:
                i = too_big[0]
                raise ValueError(
                    f"images[{i}] is {sizes[i][0]}x{sizes[i][1]}, larger than the "
                    f"{self.square_pad} px square this model pads to; resize it first"
                )
            pad_h = pad_w = self.square_pad
        else:
            div = max(self.size_divisibility, 1)
            pad_h = -(-max(h for h, _ in sizes) // div) * div
            pad_w = -(-max(w for _, w in sizes) // div) * div
        batch = []
        for image, (h, w) in zip(images, sizes):
            image = image.to(device=self.pixel_mean.device, dtype=torch.float32)
            image = (image - self.pixel_mean) / self.pixel_std
            batch.append(F.pad(image, (0, pad_w - w, 0, pad_h - h), value=0.0))
        return torch.stack(batch), sizes

    def forward(
        self,
        images: Sequence[Tensor],
        targets: Sequence[Mapping[str, Tensor]] | None = None,
        output_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch, sizes = self.preprocess(images)
        if self.training:
            if targets is None or len(targets) != len(images):
                raise ValueError("training needs one target dict per image")
            targets = [self._check_target(t, i, sizes[i]) for i, t in enumerate(targets)]
        features = self.backbone(batch)
        rpn_in = [features[name] for name in self.rpn_features]
        roi_in = [features[name] for name in self.roi_features]
        gt_boxes = [t["boxes"] for t in targets] if self.training and targets else None
        proposals, rpn_losses = self.rpn(rpn_in, sizes, gt_boxes)
        if self.training:
            roi_losses = self.roi_heads(roi_in, proposals, sizes, targets)
            return {**roi_losses, **rpn_losses}
        detections = self.roi_heads(roi_in, proposals, sizes)
        if output_sizes is None:
            output_sizes = sizes
        elif len(output_sizes) != len(images):
            raise ValueError(f"{len(output_sizes)} output sizes for {len(images)} images")
        return [
            detector_postprocess(det, size, (int(out[0]), int(out[1])), self.mask_threshold)
            for det, size, out in zip(detections, sizes, output_sizes)
        ]

    @property
    def lr_num_layers(self) -> int:
        """ViT depth, for layer-wise lr decay (ids: 0 embeddings, i + 1 block i, depth + 1
        the rest; parameter names follow detectron2's ``backbone.*.blocks.<i>.`` pattern)."""
        return len(self.backbone.vit.blocks)

    @property
    def training_stats(self) -> dict[str, float]:
        """Sampling and accuracy figures of the last training step (for logging)."""
        return {
            **{f"rpn/{k}": v for k, v in self.rpn.stats.items()},
            **{f"roi/{k}": v for k, v in self.roi_heads.stats.items()},
        }

    def _check_target(
        self, target: Mapping[str, Tensor], index: int, size: tuple[int, int]
    ) -> dict[str, Tensor]:
        device = self.pixel_mean.device
        missing = [k for k in ("boxes", "labels") if k not in target]
        if self.roi_heads.mask_head is not None and "masks" not in target:
            missing.append("masks")
        if missing:
            raise ValueError(f"targets[{index}] lacks {', '.join(missing)}")
        boxes = torch.as_tensor(target["boxes"], dtype=torch.float32, device=device).reshape(-1, 4)
        labels = torch.as_tensor(target["labels"], dtype=torch.int64, device=device).reshape(-1)
        if len(labels) != len(boxes):
            raise ValueError(f"targets[{index}]: {len(boxes)} boxes but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.roi_heads.num_classes):
            raise ValueError(
                f"targets[{index}]: labels must be in [0, {self.roi_heads.num_classes})"
            )
        checked = {"boxes": boxes, "labels": labels}
        if "masks" in target:
            masks = torch.as_tensor(target["masks"], device=device)
            if masks.ndim != 3 or masks.shape[0] != len(boxes) or tuple(masks.shape[1:]) != size:
                raise ValueError(
                    f"targets[{index}]: masks must be ({len(boxes)}, {size[0]}, {size[1]}), "
                    f"got {tuple(masks.shape)}"
                )
            checked["masks"] = masks
        return checked
