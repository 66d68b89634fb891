"""LAVT (Yang et al., CVPR 2022): language-aware vision transformer for referring segmentation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.lavt.backbone import MultiModalSwin
from rem_models.lavt.decoder import SimpleDecoder
from rem_models.lavt.text import TextEncoder


class LAVT(nn.Module):
    """Image + sentence -> background / object logits at the input size.

    Contract:
    - ``forward(images, token_ids, attention_mask)``: ``images`` (B, 3, H, W) float RGB in
      0..255 (LAVT feeds 480 x 480, resized without keeping the aspect ratio; resizing is the
      caller's job), ``token_ids`` / ``attention_mask`` (B, L) int64 from
      :class:`~rem_models.lavt.text.LavtTokenizer`. Returns logits (B, 2, H, W) (channel 1 =
      the referred object); the mask is ``logits.argmax(1) == 1``. Train and eval return the
      same; the loss is :func:`rem_models.lavt.training.lavt_loss`.
    - ``segment(normalized, words, word_mask)``: the same from normalised images and word
      features (B, L, D) -- the call LAVT's ``lavt`` layout makes with a separate BERT.

    One class serves both LAVT layouts (``lavt``: BERT outside the model, ``lavt_one``: inside
    as ``text_encoder``); they compute the same function and differ only in the file layout.
    """

    def __init__(
        self,
        backbone: MultiModalSwin,
        decoder: SimpleDecoder,
        text_encoder: TextEncoder,
        *,
        pixel_mean: Sequence[float] = (0.485, 0.456, 0.406),
        pixel_std: Sequence[float] = (0.229, 0.224, 0.225),
        image_size: int = 480,
    ):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.text_encoder = text_encoder
        self.image_size = image_size
        # Pixel statistics on the 0..255 scale (LAVT normalises 0..1 images by ImageNet stats).
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1) * 255.0, persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1) * 255.0, persistent=False
        )

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) 0..255 RGB -> ImageNet-normalised input."""
        return (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)

    def encode_text(self, token_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, L) ids and mask -> (B, L, D) word features."""
        return self.text_encoder(token_ids, attention_mask)

    def segment(self, normalized: Tensor, words: Tensor, word_mask: Tensor) -> Tensor:
        """Normalised images (B, 3, H, W) and words (B, L, D) -> logits (B, 2, H, W)."""
        features = self.backbone(normalized, words, word_mask)
        logits = self.decoder(features)
        return F.interpolate(
            logits, size=normalized.shape[-2:], mode="bilinear", align_corners=True
        )

    def forward(self, images: Tensor, token_ids: Tensor, attention_mask: Tensor) -> Tensor:
        words = self.encode_text(token_ids, attention_mask)
        return self.segment(self.normalize(images), words, attention_mask)

    @torch.no_grad()
    def predict_masks(self, images: Tensor, token_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, H, W) bool masks of the referred objects (argmax of the two logits)."""
        return self(images, token_ids, attention_mask).argmax(1) == 1
