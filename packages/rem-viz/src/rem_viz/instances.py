"""Annotation and detection files as per-image lists of instances to draw or compare.

Both COCO/LVIS/COCO-ReM annotations and scored detections (a results list, whose images and
category names come from a dataset file) end up as :class:`AnnotationSet`: image records,
category records and, per image, :class:`Instance` records holding the raw segmentation. Masks
are decoded later, per image, in whichever process draws that image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rem_core.errors import RemError
from rem_core.io import CocoFile, iscrowd, load_results, read_json
from rem_core.masks import to_rle
from rem_viz.crops import MaskCrop


@dataclass(frozen=True)
class Instance:
    """One mask of one image: an annotation (``ann_id``) or a detection (``score``).

    ``segmentation`` is what the file holds: COCO polygons, compressed or uncompressed RLE, or
    None; ``bbox`` is XYWH in pixels and stands in for a missing segmentation.
    """

    category_id: int
    segmentation: Any = None
    bbox: tuple[float, float, float, float] | None = None
    ann_id: int | None = None
    iscrowd: bool = False
    score: float | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Instance:
        """From an annotation dict (COCO/LVIS) or a detection dict (has ``score``)."""
        bbox = record.get("bbox")
        score = record.get("score")
        return cls(
            category_id=record["category_id"],
            segmentation=record.get("segmentation"),
            bbox=tuple(bbox) if isinstance(bbox, list | tuple) and len(bbox) == 4 else None,
            ann_id=record.get("id") if score is None else None,
            iscrowd=bool(iscrowd(record)),
            score=None if score is None else float(score),
        )

    def rle(self, height: int, width: int) -> dict:
        """Compressed RLE on an (H, W) image; a box-only instance becomes its rectangle.

        Raises :class:`RemError` for a segmentation that cannot be read (wrong RLE size...).
        """
        seg = self.segmentation
        if seg is None or (isinstance(seg, list) and not seg):
            if self.bbox is None:
                return to_rle([], height, width)
            x, y, w, h = self.bbox
            seg = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        return to_rle(seg, height, width)


@dataclass
class Decoded:
    """The instances of one image that could be decoded, with their RLEs and mask crops.

    ``problems`` describes each instance left out because its segmentation cannot be read.
    """

    instances: list[Instance] = field(default_factory=list)
    rles: list[dict] = field(default_factory=list)
    masks: list[MaskCrop] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def decode_instances(instances: Iterable[Instance], height: int, width: int) -> Decoded:
    """Decode every instance on an (H, W) image; one bad record costs one mask, not the image."""
    out = Decoded()
    for inst in instances:
        try:
            rle = inst.rle(height, width)
            mask = MaskCrop.from_rle(rle)
        except (RemError, ValueError, TypeError) as exc:
            who = f"annotation {inst.ann_id}" if inst.ann_id is not None else "a detection"
            out.problems.append(f"{who}: {exc}")
            continue
        out.instances.append(inst)
        out.rles.append(rle)
        out.masks.append(mask)
    return out


def label_text(instance: Instance, names: Mapping[int, str]) -> str:
    """COCO-ReM's label: ``"name (id)"``, ``"name|crowd (id)"``; detections ``"name 0.87"``."""
    name = names.get(instance.category_id, str(instance.category_id))
    if instance.score is not None:
        return f"{name} {instance.score:.2f}"
    crowd = "|crowd" if instance.iscrowd else ""
    ann = f" ({instance.ann_id})" if instance.ann_id is not None else ""
    return f"{name}{crowd}{ann}"


@dataclass
class AnnotationSet:
    """Images, categories and per-image instances of one file.

    ``instances`` maps every image id of ``images`` to its instances in file order (possibly
    none). ``orphans`` counts records whose ``image_id`` is not an image of the file; they are
    skipped.
    """

    images: dict[int, dict]
    categories: dict[int, dict]
    instances: dict[int, list[Instance]]
    path: Path | None = None
    kind: str = "annotations"
    orphans: int = 0
    image_order: list[int] = field(default_factory=list)

    @property
    def names(self) -> dict[int, str]:
        """category id -> name (the id as text where a category has no name)."""
        return {cid: str(c.get("name", cid)) for cid, c in self.categories.items()}

    @property
    def num_instances(self) -> int:
        return sum(len(v) for v in self.instances.values())

    @classmethod
    def from_coco(cls, coco: CocoFile) -> AnnotationSet:
        """From a loaded COCO / LVIS / COCO-ReM file."""
        images = coco.imgs
        by_image: dict[int, list[Instance]] = {i: [] for i in images}
        orphans = 0
        for i, ann in enumerate(coco.annotations):
            if not isinstance(ann, dict) or "category_id" not in ann:
                raise RemError("missing 'category_id'", path=coco.path, where=f"annotations[{i}]")
            target = by_image.get(ann.get("image_id"))
            if target is None:
                orphans += 1
                continue
            target.append(Instance.from_record(ann))
        return cls(
            images=images,
            categories=coco.cats,
            instances=by_image,
            path=coco.path,
            orphans=orphans,
            image_order=sorted(images),
        )

    def with_detections(
        self,
        detections: Iterable[Mapping[str, Any]],
        score_threshold: float = 0.0,
        path: str | Path | None = None,
    ) -> AnnotationSet:
        """The same images and categories holding ``detections`` with score >= the threshold.

        Detections of an image keep the order of the file; painting sorts them by area anyway.
        """
        by_image: dict[int, list[Instance]] = {i: [] for i in self.images}
        orphans = 0
        for det in detections:
            if float(det["score"]) < score_threshold:
                continue
            target = by_image.get(det["image_id"])
            if target is None:
                orphans += 1
                continue
            target.append(Instance.from_record(det))
        return AnnotationSet(
            images=self.images,
            categories=self.categories,
            instances=by_image,
            path=None if path is None else Path(path),
            kind="detections",
            orphans=orphans,
            image_order=self.image_order,
        )


def load_annotation_set(path: str | Path) -> AnnotationSet:
    """Load a COCO / LVIS / COCO-ReM annotation file.

    A results list is refused with a hint: it names no images or categories by itself.
    """
    path = Path(path)
    data = read_json(path)
    if isinstance(data, list):
        raise RemError(
            "this is a results list (detections); pass the dataset it belongs to as the "
            "annotation file and this file as --results",
            path=path,
        )
    return AnnotationSet.from_coco(CocoFile(data, path))


def load_detection_set(
    results_path: str | Path, dataset: str | Path | AnnotationSet, score_threshold: float = 0.0
) -> AnnotationSet:
    """Detections of ``results_path`` on the images of ``dataset`` (path or loaded set).

    Every detection's ``image_id`` must be an image of the dataset.
    """
    base = dataset if isinstance(dataset, AnnotationSet) else load_annotation_set(dataset)
    coco = CocoFile({"images": list(base.images.values())}, base.path)
    detections = load_results(results_path, coco)
    return base.with_detections(detections, score_threshold, path=results_path)
