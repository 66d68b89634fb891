"""Referring samples as LAVT sees them: square-resized images, masks and token ids.

LAVT resizes every image to S x S (480) with PIL bilinear, ignoring the aspect ratio, and the
mask with PIL nearest. Its ground truth is built as the refer toolkit's ``getMask`` builds
it: the polygons of the referred annotation are rasterised and summed, and only pixels covered
exactly once are object (overlaps of multi-polygon annotations are dropped). Training draws one
sentence of the ref per epoch; evaluation uses every sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from rem_core import masks as mask_ops
from rem_core.errors import RemError
from rem_core.schemas import ReferringSample
from rem_models.lavt.text import LavtTokenizer


def sentence_text(sentence: Any) -> str:
    """The text LAVT tokenises: the ``raw`` sentence when the refer file has it, else ``sent``."""
    extra = getattr(sentence, "model_extra", None) or {}
    raw = extra.get("raw")
    return raw if isinstance(raw, str) else sentence.sent


def referring_gt_mask(sample: ReferringSample) -> np.ndarray:
    """(H, W) bool ground truth at the image size, with refer's exactly-once polygon rule."""
    h, w = sample.height, sample.width
    segm = sample.segmentation
    if segm is None:
        raise RemError(
            "the sample has no segmentation (LAVT trains on masks)", where=f"ref {sample.ref_id}"
        )
    if isinstance(segm, list):
        polygons = [list(map(float, p)) for p in segm if len(p) >= 6]
        if not polygons:
            return np.zeros((h, w), dtype=bool)
        counts = sum(mask_ops.decode(mask_ops.to_rle([p], h, w)).astype(np.int32) for p in polygons)
        return counts == 1
    return mask_ops.decode(mask_ops.to_rle(segm.model_dump(), h, w)).astype(bool)


def load_image(path: Path) -> Image.Image:
    """An RGB PIL image (LAVT reads with PIL and converts to RGB; no EXIF rotation)."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise RemError("image not found", path=path) from None
    except OSError as exc:
        raise RemError(f"cannot read image: {exc}", path=path) from None


def square_image(image: Image.Image, size: int) -> Tensor:
    """PIL RGB -> (3, size, size) float 0..255, PIL bilinear (as torchvision's resize of PIL)."""
    resized = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32).copy()).permute(2, 0, 1)


def square_mask(mask: np.ndarray, size: int) -> Tensor:
    """(H, W) bool -> (size, size) int64 with PIL nearest (LAVT's target resize)."""
    resized = Image.fromarray(mask.astype(np.uint8)).resize((size, size), Image.NEAREST)
    return torch.from_numpy(np.asarray(resized, dtype=np.int64).copy())


def image_path(sample: ReferringSample, image_dir: str | Path) -> Path:
    if not sample.file_name:
        raise RemError("the sample names no image file", where=f"ref {sample.ref_id}")
    return Path(image_dir) / sample.file_name


@dataclass(frozen=True)
class SentenceRef:
    """One (ref, sentence) pair of an evaluation pass."""

    sample_index: int
    sentence_index: int


class ReferringDataset(Dataset):
    """LAVT training / evaluation items from referring samples.

    Training (``every_sentence=False``): one item per ref with a sentence drawn from
    ``(seed, epoch, index)`` (call :meth:`set_epoch`). Evaluation: one item per sentence.
    Items: ``image`` (3, S, S) float 0..255, ``target`` (S, S) int64, ``token_ids`` and
    ``attention_mask`` (L,) int64, ``ref_id``, ``sent_index``.
    """

    def __init__(
        self,
        samples: Sequence[ReferringSample],
        image_dir: str | Path,
        tokenizer: LavtTokenizer,
        *,
        image_size: int = 480,
        every_sentence: bool = False,
        seed: int = 0,
    ):
        self.samples = list(samples)
        self.image_dir = Path(image_dir)
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.seed = seed
        self.epoch = 0
        self.every_sentence = every_sentence
        self.items = [
            SentenceRef(i, j)
            for i, s in enumerate(self.samples)
            for j in range(len(s.sentences) if every_sentence else 1)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        sample = self.samples[item.sample_index]
        j = item.sentence_index
        if not self.every_sentence:
            draw = np.random.default_rng([self.seed, self.epoch, item.sample_index])
            j = int(draw.integers(len(sample.sentences)))
        ids, mask = self.tokenizer([sentence_text(sample.sentences[j])])
        image = load_image(image_path(sample, self.image_dir))
        return {
            "image": square_image(image, self.image_size),
            "target": square_mask(referring_gt_mask(sample), self.image_size),
            "token_ids": ids[0],
            "attention_mask": mask[0],
            "ref_id": sample.ref_id,
            "sent_index": j,
        }
