"""CIM training data from a COCO file: image-level labels only, plus proposals per image."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from rem_core.errors import RemError
from rem_core.io import CocoFile
from rem_core.schemas import ImageProposals
from rem_models.cim.data import CimSample, prepare_sample
from rem_models.cim.proposals_io import proposal_masks
from rem_models.engine.dataset import image_path


def category_order(coco: CocoFile) -> list[int]:
    """Category ids sorted: class index c <-> ``category_order(coco)[c]``."""
    return sorted(coco.cats)


def image_labels(coco: CocoFile, image_id: int, categories: list[int]) -> np.ndarray:
    """(C,) bool image-level labels: every category with an annotation (crowd included) in the
    image. Only this leaves the annotations; their masks and boxes are never used."""
    index = {c: i for i, c in enumerate(categories)}
    labels = np.zeros(len(categories), dtype=bool)
    for ann in coco.img_to_anns.get(image_id, []):
        labels[index[ann["category_id"]]] = True
    return labels


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; unreadable -> RemError."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise RemError("cannot read the image", path=path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_samples(
    coco: CocoFile,
    image_dir: Path,
    proposals: dict[int, ImageProposals] | Callable[[np.ndarray], np.ndarray],
    roi_size: int = 7,
    peaks: Mapping[int, Sequence[tuple[float, float, int]]] | None = None,
) -> list[CimSample]:
    """One :class:`CimSample` per image of ``coco``. ``proposals`` is a loaded proposal file or
    a generator ``image (H, W, 3) uint8 -> (N, H, W) bool``. An image missing from the file
    gets no proposals. ``peaks`` (per image id: (x, y, class), weakest first; see
    :func:`rem_models.cim.peaks_io.load_peaks`) add PCL clusters; images absent from it get
    none."""
    categories = category_order(coco)
    samples = []
    for image_id in sorted(coco.imgs):
        record = coco.imgs[image_id]
        image = read_rgb(image_path(record, image_dir, f"image id {image_id}", coco.path))
        if callable(proposals):
            masks = proposals(image)
        elif image_id in proposals:
            masks = proposal_masks(proposals[image_id])
            if masks.shape[1:] != image.shape[:2]:
                raise RemError(
                    f"proposal masks are {list(masks.shape[1:])}, the image is "
                    f"{list(image.shape[:2])}",
                    where=f"image_id {image_id}",
                )
        else:
            masks = np.zeros((0, *image.shape[:2]), dtype=bool)
        samples.append(
            prepare_sample(
                image_id,
                image,
                masks,
                image_labels(coco, image_id, categories),
                None if peaks is None else peaks.get(image_id),
                roi_size,
            )
        )
    return samples
