"""Binary masks kept as their bounding-box crop.

A COCO image holds tens of instances, most a few percent of the frame. Storing each mask as the
crop of its bounding box (plus the offset) makes painting, outlining and comparing cost in
proportion to the object, not to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rem_core.masks import decode_box, rle_size


@dataclass(frozen=True)
class MaskCrop:
    """Pixels ``[y0:y0+h, x0:x0+w]`` of a binary mask over an image of ``image_shape`` (H, W).

    ``data`` is the (h, w) bool crop; every pixel outside it is background. An empty mask has a
    (0, 0) crop.
    """

    data: np.ndarray
    y0: int
    x0: int
    image_shape: tuple[int, int]

    @classmethod
    def from_full(cls, mask: np.ndarray) -> MaskCrop:
        """Crop an (H, W) mask (any dtype, nonzero = foreground) to its bounding box."""
        mask = np.asarray(mask)
        shape = (int(mask.shape[0]), int(mask.shape[1]))
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return cls(np.zeros((0, 0), bool), 0, 0, shape)
        cols = np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return cls(mask[y0:y1, x0:x1].astype(bool), int(y0), int(x0), shape)

    @classmethod
    def from_rle(cls, rle: dict) -> MaskCrop:
        """Decode only the box of a (compressed or uncompressed) RLE, never the full image."""
        crop, x0, y0 = decode_box(rle)
        h, w = rle_size(rle)
        return cls(crop.view(bool) if crop.size else np.zeros((0, 0), bool), y0, x0, (h, w))

    @property
    def y1(self) -> int:
        return self.y0 + self.data.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.data.shape[1]

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.data))

    @property
    def empty(self) -> bool:
        return self.data.size == 0

    def to_full(self) -> np.ndarray:
        """The (H, W) bool mask."""
        full = np.zeros(self.image_shape, bool)
        full[self.y0 : self.y1, self.x0 : self.x1] = self.data
        return full

    def window(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        """The mask over the image window ``[y0:y1, x0:x1]`` as a (y1-y0, x1-x0) bool array."""
        out = np.zeros((y1 - y0, x1 - x0), bool)
        if self.empty:
            return out
        ty0, tx0 = max(y0, self.y0), max(x0, self.x0)
        ty1, tx1 = min(y1, self.y1), min(x1, self.x1)
        if ty0 < ty1 and tx0 < tx1:
            out[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0] = self.data[
                ty0 - self.y0 : ty1 - self.y0, tx0 - self.x0 : tx1 - self.x0
            ]
        return out


def union_box(a: MaskCrop, b: MaskCrop) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) covering both crops; an empty crop does not widen it."""
    boxes = [(m.y0, m.x0, m.y1, m.x1) for m in (a, b) if not m.empty]
    if not boxes:
        return 0, 0, 0, 0
    y0s, x0s, y1s, x1s = zip(*boxes)
    return min(y0s), min(x0s), max(y1s), max(x1s)
