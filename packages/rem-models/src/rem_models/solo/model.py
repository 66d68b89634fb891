"""The SOLO-family detector: ResNet + FPN + a grid head (+ SOLOv2's mask-feature head)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo.config import InferenceConfig
from rem_models.solo.grid_head import GridHead
from rem_models.solo.postprocess import boxes_from_masks, paste_masks
from rem_models.solo.resize import rescaled_size, resize_image, resize_target


class SOLODetector(nn.Module):
    """SOLO, SOLOv2, AggMask and AggMask* in the torchvision detection contract.

    ``model(images, targets=None, output_sizes=None)``

    - ``images``: list of (3, H, W) float tensors, RGB, values 0-255, any size. At inference
      each is rescaled to ``test_scale`` (mmdet's keep-ratio ``Resize``; None: kept), when
      training to a scale drawn from ``train_scales`` (multi-scale training; empty: kept).
      Then normalised and zero-padded at the bottom/right to the batch's largest size rounded
      up to ``size_divisor``.
    - ``targets`` (training only): one dict per image with ``boxes`` (G, 4) float XYXY pixels,
      ``labels`` (G,) int64 in [0, num_classes), ``masks`` (G, H, W) uint8 or bool. G may be 0.
    - ``output_sizes`` (inference only, optional): per image (H_out, W_out) to report results
      at; default: the input's own size.

    Training returns ``{"loss_ins": Dice x 3, "loss_cate": focal}``; the parameters come in
    the released checkpoints' names (``backbone.``, ``neck.``, ``bbox_head.``,
    ``mask_feat_head.``). Evaluation returns per image ``boxes`` (D, 4) float32 XYXY (tight
    around each mask), ``scores`` (D,) float32, ``labels`` (D,) int64 and ``masks`` (D, H_out,
    W_out) bool, highest score first, D <= ``test.max_per_img``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        bbox_head: GridHead,
        mask_feat_head: nn.Module | None = None,
        *,
        test: InferenceConfig | None = None,
        pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
        pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
        size_divisor: int = 32,
        test_scale: tuple[int, int] | None = (1333, 800),
        train_scales: Sequence[tuple[int, int]] = (),
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = bbox_head
        self.mask_feat_head = mask_feat_head
        self.test_cfg = test or InferenceConfig()
        # Not persistent: the released checkpoints do not hold them.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.size_divisor = size_divisor
        self.test_scale = tuple(test_scale) if test_scale else None
        self.train_scales = [tuple(s) for s in train_scales]

    # ----------------------------------------------------------------------------------------

    def _scale_for(self, training: bool) -> tuple[int, int] | None:
        if not training:
            return self.test_scale  # type: ignore[return-value]
        if not self.train_scales:
            return None
        pick = int(torch.randint(len(self.train_scales), (1,)))
        return self.train_scales[pick]  # type: ignore[return-value]

    def _pad(self, images: list[Tensor]) -> tuple[Tensor, tuple[int, int]]:
        div = self.size_divisor
        pad_h = -(-max(int(im.shape[1]) for im in images) // div) * div
        pad_w = -(-max(int(im.shape[2]) for im in images) // div) * div
        batch = []
        for image in images:
            image = image.to(device=self.pixel_mean.device, dtype=torch.float32)
            image = (image - self.pixel_mean) / self.pixel_std
            h, w = image.shape[1:]
            batch.append(F.pad(image, (0, pad_w - w, 0, pad_h - h), value=0.0))
        return torch.stack(batch), (pad_h, pad_w)

    def features(self, batch: Tensor) -> dict[str, object]:
        """Head outputs for a normalised, padded batch (N, 3, Hp, Wp)."""
        pyramid = self.neck(self.backbone(batch))
        outputs = dict(self.bbox_head(pyramid))
        if self.mask_feat_head is not None:
            outputs["feature"] = self.mask_feat_head(pyramid)
        return outputs

    def forward(
        self,
        images: Sequence[Tensor],
        targets: Sequence[Mapping[str, Tensor]] | None = None,
        output_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if not images:
            raise ValueError("expected at least one image")
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(f"images[{i}] must be (3, H, W), got {tuple(image.shape)}")
        if self.training:
            if targets is None or len(targets) != len(images):
                raise ValueError("training needs one target dict per image")
            return self._losses(list(images), list(targets))
        if output_sizes is not None and len(output_sizes) != len(images):
            raise ValueError("output_sizes needs one (H, W) per image")
        return self._predict(list(images), output_sizes)

    def _check_target(self, target: Mapping[str, Tensor], i: int, size: tuple[int, int]) -> None:
        for key in ("boxes", "labels", "masks"):
            if key not in target:
                raise ValueError(f"targets[{i}] has no {key!r}")
        g = target["labels"].shape[0]
        if target["boxes"].shape != (g, 4) or target["masks"].shape != (g, *size):
            raise ValueError(
                f"targets[{i}]: boxes {tuple(target['boxes'].shape)}, labels ({g},) and masks "
                f"{tuple(target['masks'].shape)} do not fit {g} instances of a {size} image"
            )
        if g and not (
            int(target["labels"].min()) >= 0
            and int(target["labels"].max()) < self.bbox_head.num_classes
        ):
            raise ValueError(f"targets[{i}]: labels outside [0, {self.bbox_head.num_classes})")

    def _losses(
        self, images: list[Tensor], targets: list[Mapping[str, Tensor]]
    ) -> dict[str, Tensor]:
        resized, scaled = [], []
        for i, (image, target) in enumerate(zip(images, targets)):
            self._check_target(target, i, (int(image.shape[1]), int(image.shape[2])))
            scale = self._scale_for(training=True)
            size = (
                rescaled_size(image.shape[1], image.shape[2], scale) if scale else image.shape[1:]
            )
            size = (int(size[0]), int(size[1]))
            resized.append(resize_image(image, size))
            scaled.append(resize_target(target, size))
        batch, pad = self._pad(resized)
        padded = []
        for t in scaled:
            masks = t["masks"].to(batch.device)
            canvas = masks.new_zeros((masks.shape[0], *pad))
            canvas[:, : masks.shape[1], : masks.shape[2]] = masks
            padded.append(
                {
                    "boxes": t["boxes"].to(batch.device, torch.float32),
                    "labels": t["labels"].to(batch.device, torch.int64),
                    "masks": canvas,
                }
            )
        outputs = self.features(batch)
        return self.bbox_head.losses(outputs, padded, pad)

    @torch.no_grad()
    def _predict(
        self, images: list[Tensor], output_sizes: Sequence[tuple[int, int]] | None
    ) -> list[dict[str, Tensor]]:
        sizes = []
        resized = []
        for image in images:
            h, w = int(image.shape[1]), int(image.shape[2])
            size = rescaled_size(h, w, self.test_scale) if self.test_scale else (h, w)  # type: ignore[arg-type]
            sizes.append(size)
            resized.append(resize_image(image, size))
        batch, pad = self._pad(resized)
        outputs = self.features(batch)
        results = []
        for i, image in enumerate(images):
            out_size = (
                (int(output_sizes[i][0]), int(output_sizes[i][1]))
                if output_sizes is not None
                else (int(image.shape[1]), int(image.shape[2]))
            )
            # Mask IoUs count pixels: keep post-processing in float32 under autocast.
            with torch.autocast(batch.device.type, enabled=False):
                probs, scores, labels = self.bbox_head.instances(outputs, i, self.test_cfg)
                masks = paste_masks(probs, pad, sizes[i], out_size, self.test_cfg.mask_thr)
            results.append(
                {
                    "boxes": boxes_from_masks(masks),
                    "scores": scores.float(),
                    "labels": labels.long(),
                    "masks": masks,
                }
            )
        return results
