"""Instance-segmentation datasets from COCO, LVIS and COCO-ReM files, as model inputs.

A sample is ``(image, target)``: ``image`` a (3, H, W) float32 tensor of RGB values in 0-255,
``target`` a dict with ``boxes`` (N, 4) XYXY float32 pixels, ``labels`` (N,) int64 contiguous
0-based, ``masks`` (N, H, W) uint8 and ``image_id``. Crowd regions are not training instances
(detectron2 drops them too); degenerate polygons and annotations left without a usable mask are
skipped and counted, so one bad record does not stop a long run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from rem_core import masks as mask_ops
from rem_core.errors import RemError
from rem_core.image_files import escapes_root, find_image_file, image_name
from rem_core.io import CocoFile, iscrowd, load_coco, segmentation_kind
from rem_models.engine.augment import augment_sample, boxes_from_masks
from rem_models.engine.categories import CategoryMap
from rem_models.engine.config import AugmentConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array, rotated upright by its EXIF orientation.

    COCO sizes refer to the upright image (the annotation tools applied the EXIF rotation), so
    reading without it would misplace every mask on rotated photos.
    """
    try:
        with Image.open(path) as raw:
            upright = ImageOps.exif_transpose(raw)
            return np.array(upright.convert("RGB"))  # a writable copy
    except FileNotFoundError:
        raise RemError("image file not found", path=path) from None
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
        raise RemError(f"cannot read image: {exc}", path=path) from None


def image_size(path: Path) -> dict[str, int]:
    """``{"height", "width"}`` of the upright image, read from the header (no decoding)."""
    try:
        with Image.open(path) as raw:
            width, height = raw.size
            # EXIF orientations 5-8 are rotations by 90 degrees: the upright image is transposed.
            if raw.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width
    except OSError as exc:
        raise RemError(f"cannot read image: {exc}", path=path) from None
    return {"height": height, "width": width}


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in 0-255 (the model contract)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()


@dataclass
class DatasetStats:
    """What loading kept and skipped, for one warning line per kind of problem."""

    images: int = 0
    images_kept: int = 0
    empty_images_dropped: int = 0
    annotations: int = 0
    instances: int = 0
    crowd_skipped: int = 0
    degenerate_polygons: int = 0
    unusable_skipped: int = 0
    unknown_category: int = 0
    examples: dict[str, str] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """Human-readable counted warnings (empty when nothing was skipped)."""
        out = []
        if self.degenerate_polygons:
            out.append(
                f"dropped {self.degenerate_polygons} degenerate polygon(s) "
                f"(< 6 coordinates or non-finite), e.g. {self.examples.get('polygon', '?')}"
            )
        if self.unusable_skipped:
            out.append(
                f"skipped {self.unusable_skipped} annotation(s) without a usable mask, e.g. "
                f"{self.examples.get('unusable', '?')}"
            )
        if self.unknown_category:
            out.append(
                f"skipped {self.unknown_category} annotation(s) of a category not listed, e.g. "
                f"{self.examples.get('category', '?')}"
            )
        if self.empty_images_dropped:
            out.append(f"dropped {self.empty_images_dropped} image(s) without usable instances")
        return out


def image_path(record: dict, image_dir: Path, where: str, source: Path | None) -> Path:
    """The file of image ``record`` under ``image_dir`` (COCO ``file_name`` or LVIS
    ``coco_url``, see :mod:`rem_core.image_files`); may not exist, which callers check.

    A ``file_name`` that is absolute or climbs out of ``image_dir`` is an error: data must not
    name files outside the image folder.
    """
    if escapes_root(record):
        raise RemError(
            "file_name escapes the image folder", path=source, where=f"{where}.file_name"
        )
    return find_image_file(record, [image_dir]) or image_dir / image_name(record)


@dataclass(frozen=True)
class ImageRecord:
    """One image and its usable instances: ``(label, segmentation)`` pairs in file order."""

    image_id: int
    path: Path
    height: int
    width: int
    instances: tuple[tuple[int, Any], ...]


def _usable_instance(
    ann: dict, where: str, categories: CategoryMap, stats: DatasetStats
) -> tuple[int, Any] | None:
    """``(label, segmentation)`` of a training annotation, or None (counted) when unusable."""
    if not categories.has(ann.get("category_id")):
        stats.unknown_category += 1
        stats.examples.setdefault("category", where)
        return None
    seg = ann.get("segmentation")
    kind = segmentation_kind(seg)
    if kind == "polygon":
        kept, dropped = mask_ops.clean_polygons(seg)
        if dropped:
            stats.degenerate_polygons += dropped
            stats.examples.setdefault("polygon", f"{where}.segmentation")
        if not kept:
            stats.unusable_skipped += 1
            stats.examples.setdefault("unusable", where)
            return None
        seg = kept
    elif kind not in ("rle", "uncompressed-rle"):
        stats.unusable_skipped += 1
        stats.examples.setdefault("unusable", where)
        return None
    return categories.to_label(ann["category_id"]), seg


class CocoInstances(torch.utils.data.Dataset):
    """Images and instance masks of a COCO-style file, mapped to contiguous labels.

    ``filter_empty`` drops images without a usable non-crowd instance (detectron2's
    ``filter_empty_annotations``; wanted for training, not for evaluation). ``augment`` is applied
    per sample with a random stream derived from ``seed`` and the sample's place in the run, so
    results do not depend on worker count or process rank. Items are fetched by ``index`` or by
    ``(index, step, slot)`` (what :class:`~rem_models.engine.sampler.TrainBatchSampler` yields).
    """

    def __init__(
        self,
        coco: CocoFile | str | Path,
        image_dir: str | Path,
        *,
        categories: CategoryMap | None = None,
        filter_empty: bool = True,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        check_files: bool = True,
    ) -> None:
        self.coco = coco if isinstance(coco, CocoFile) else load_coco(coco)
        self.image_dir = Path(image_dir)
        self.categories = categories or CategoryMap.from_categories(self.coco.categories)
        if not len(self.categories):
            raise RemError("the file lists no categories", path=self.coco.path, where="categories")
        self.augment = augment
        self.seed = seed
        self.stats = DatasetStats(images=len(self.coco.images))
        self.records = self._build_records(filter_empty)
        self.stats.images_kept = len(self.records)
        if check_files:
            self._check_files()

    def _build_records(self, filter_empty: bool) -> list[ImageRecord]:
        stats = self.stats
        index = {id(ann): i for i, ann in enumerate(self.coco.annotations)}
        records = []
        for i, img in enumerate(self.coco.images):
            instances = []
            for ann in self.coco.img_to_anns[img["id"]]:
                stats.annotations += 1
                if iscrowd(ann):
                    stats.crowd_skipped += 1
                    continue
                usable = _usable_instance(
                    ann, f"annotations[{index[id(ann)]}]", self.categories, stats
                )
                if usable is not None:
                    instances.append(usable)
            if filter_empty and not instances:
                stats.empty_images_dropped += 1
                continue
            stats.instances += len(instances)
            records.append(
                ImageRecord(
                    int(img["id"]),
                    image_path(img, self.image_dir, f"images[{i}]", self.coco.path),
                    int(img["height"]),
                    int(img["width"]),
                    tuple(instances),
                )
            )
        return records

    def _check_files(self) -> None:
        missing = [r.path for r in self.records if not r.path.is_file()]
        if missing:
            raise RemError(
                f"{len(missing)} image file(s) listed in {self.coco.path or 'the dataset'} are "
                f"missing under {self.image_dir}, e.g. {missing[0].name}",
                path=missing[0],
            )

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
        for i in range(len(self)):
            yield self[i]

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image (H, W, 3) uint8, masks (N, H, W) uint8 and labels (N,) of record ``i``."""
        rec = self.records[i]
        image = read_image(rec.path)
        if image.shape[:2] != (rec.height, rec.width):
            raise RemError(
                f"image is {image.shape[1]}x{image.shape[0]} (after EXIF rotation) but the "
                f"annotation file says {rec.width}x{rec.height}",
                path=rec.path,
            )
        if rec.instances:
            rles = [mask_ops.to_rle(seg, rec.height, rec.width) for _, seg in rec.instances]
            masks = np.ascontiguousarray(mask_ops.decode_many(rles))
        else:
            masks = np.zeros((0, rec.height, rec.width), dtype=np.uint8)
        labels = np.array([label for label, _ in rec.instances], dtype=np.int64)
        return image, masks, labels

    def __getitem__(self, key: int | tuple[int, int, int]) -> tuple[torch.Tensor, dict[str, Any]]:
        i, step, slot = (key, 0, 0) if isinstance(key, int) else key
        image, masks, labels = self.load(i)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, step, slot, i])
            image, masks, keep = augment_sample(image, masks, self.augment, rng)
            labels = labels[keep]
        target = {
            "boxes": torch.from_numpy(boxes_from_masks(masks)),
            "labels": torch.from_numpy(labels),
            "masks": torch.from_numpy(masks),
            "image_id": self.records[i].image_id,
        }
        return image_to_tensor(image), target


class ImageFiles(torch.utils.data.Dataset):
    """Images for prediction: from a COCO file's ``images`` or every image file in a folder.

    Items are ``(image, info)`` with ``info = {"image_id", "file_name", "height", "width"}``.
    Images of a folder get ids 1, 2, ... in sorted file-name order.
    """

    def __init__(self, source: CocoFile | str | Path, image_dir: str | Path | None = None) -> None:
        self.coco: CocoFile | None = source if isinstance(source, CocoFile) else None
        source = Path(source.path or "<dataset>") if isinstance(source, CocoFile) else Path(source)
        if self.coco is None and source.is_dir():
            files = sorted(
                p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise RemError("no image files (jpg, png, bmp, webp, tif) in folder", path=source)
            self.entries = [
                {"image_id": i + 1, "file_name": p.name, "path": p} for i, p in enumerate(files)
            ]
        elif self.coco is not None or source.is_file():
            self.coco = self.coco or load_coco(source)
            if image_dir is None:
                raise RemError("--image-dir is needed with a JSON list of images", path=source)
            base = Path(image_dir)
            self.entries = [
                {
                    "image_id": int(img["id"]),
                    "file_name": image_name(img),
                    "path": image_path(img, base, f"images[{i}]", self.coco.path),
                }
                for i, img in enumerate(self.coco.images)
            ]
        else:
            raise RemError("no such file or folder", path=source)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        entry = self.entries[i]
        image = read_image(entry["path"])
        info = {
            "image_id": entry["image_id"],
            "file_name": entry["file_name"],
            "height": image.shape[0],
            "width": image.shape[1],
        }
        return image_to_tensor(image), info


def collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[list[torch.Tensor], list[Any]]:
    """Keep images of different sizes as a list (the model pads them itself)."""
    return [b[0] for b in batch], [b[1] for b in batch]
