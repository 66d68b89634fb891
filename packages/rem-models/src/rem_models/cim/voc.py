"""PASCAL VOC 2012 and SBD instance masks as COCO instances (for CIM's VOC experiments).

VOC2012: ``SegmentationObject/<id>.png`` (palette index = instance, 255 = boundary) and
``SegmentationClass/<id>.png`` (palette index = class 1..20). SBD (the "train_aug" source):
``inst/<id>.mat`` (``GTinst.Segmentation``) and ``cls/<id>.mat`` (``GTcls.Segmentation``).
The 255 "void" border of VOC masks is left out of every instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from rem_core import masks as mask_ops
from rem_core.errors import RemError

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def read_id_list(path: str | Path) -> list[str]:
    """Image ids of a split file (one per line, e.g. ``train_aug.txt``), blank lines skipped."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RemError(f"cannot read the split file: {exc.strerror}", path=path) from None
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def instances_from_maps(
    instance_map: np.ndarray, class_map: np.ndarray
) -> list[tuple[int, np.ndarray]]:
    """``(class 1..20, (H, W) bool mask)`` per instance id of (H, W) integer maps (0 and 255 are
    background / void). An instance's class is its most frequent class-map value."""
    out = []
    for inst in np.unique(instance_map):
        if inst in (0, 255):
            continue
        mask = instance_map == inst
        values = class_map[mask]
        values = values[(values > 0) & (values <= len(VOC_CLASSES))]
        if values.size == 0:
            continue
        out.append((int(np.bincount(values).argmax()), mask))
    return out


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im)  # palette images keep their indices
    except OSError:
        raise RemError("cannot read the label image", path=path) from None


def _read_mat(path: Path, struct: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError) as exc:
        raise RemError(f"cannot read the .mat file: {exc}", path=path) from None
    if struct not in data:
        raise RemError(f"no {struct!r} struct", path=path)
    return np.asarray(data[struct].Segmentation)


def voc_to_coco(
    root: str | Path, image_ids: Iterable[str], source: str = "voc", image_dir: str = "JPEGImages"
) -> dict:
    """A COCO instances dict for ``image_ids`` (``source`` ``"voc"`` or ``"sbd"``); categories
    are the 20 VOC classes with ids 1..20; images get integer ids 1..N in the given order and
    keep the VOC name as ``file_name`` (``<id>.jpg``)."""
    root = Path(root)
    images, annotations = [], []
    for index, name in enumerate(image_ids, start=1):
        if source == "sbd":
            inst = _read_mat(root / "inst" / f"{name}.mat", "GTinst")
            cls = _read_mat(root / "cls" / f"{name}.mat", "GTcls")
        else:
            inst = _read_png(root / "SegmentationObject" / f"{name}.png")
            cls = _read_png(root / "SegmentationClass" / f"{name}.png")
        h, w = inst.shape[:2]
        images.append({"id": index, "file_name": f"{name}.jpg", "height": h, "width": w})
        for category, mask in instances_from_maps(inst.astype(np.int64), cls.astype(np.int64)):
            rle = mask_ops.encode(mask)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": category,
                    "segmentation": rle,
                    "area": float(mask_ops.area(rle)),
                    "bbox": mask_ops.bbox(rle),
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": f"PASCAL VOC instances ({source})", "image_dir": image_dir},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": n, "supercategory": "voc"} for i, n in enumerate(VOC_CLASSES)
        ],
    }
