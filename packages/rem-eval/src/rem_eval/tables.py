"""Ground truth and detections as column arrays, loaded with the references' exact semantics.

pycocotools keeps one dict per record and walks them in Python loops; here the fields that
evaluation reads (ids, areas, crowd flags, boxes, scores) become NumPy columns once, and the
segmentations stay the parsed JSON objects, converted to RLE only where an IoU needs them.

Loading rules follow ``COCO.loadRes`` / ``LVISResults`` (eval.md §1.2, §3): the first detection
decides between the box branch (area = w*h, a box polygon when there is no mask) and the mask
branch (area = mask area, box = mask box); detections are numbered 1..N in input order; GT
``iscrowd`` defaults to 0; GT ``area`` is taken from the file, never recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from rem_core.errors import RemError


@dataclass
class GroundTruth:
    """A COCO / LVIS / COCO-ReM instances file as columns.

    Images are sorted by id (``img_ids``), categories by id (``cat_ids``). Annotation rows keep
    file order; ``ann_img`` / ``ann_cat`` index into ``img_ids`` / ``cat_ids``. Annotations on
    unknown images or categories are dropped (the references never evaluate them) and counted in
    ``warnings``. ``area`` is the file's field; where it is missing it is NaN until filled from
    the mask (:func:`rem_eval.rles.fill_missing_areas`).
    """

    source: str
    path: Path | None
    img_ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    cat_ids: np.ndarray
    cat_names: list[str]
    cat_frequency: list[str | None]
    ann_ids: np.ndarray
    ann_img: np.ndarray
    ann_cat: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    ignore: np.ndarray
    bbox: np.ndarray
    segm: list[Any]
    ann_where: np.ndarray
    neg_cats: list[np.ndarray | None]
    not_exhaustive: list[np.ndarray | None]
    warnings: list[str] = field(default_factory=list)

    @property
    def num_annotations(self) -> int:
        return int(self.ann_ids.size)

    def image_index(self, image_ids: np.ndarray) -> np.ndarray:
        """Positions of ``image_ids`` in ``img_ids``; -1 for ids that are not GT images."""
        return _lookup(self.img_ids, image_ids)

    def category_index(self, cat_ids: np.ndarray) -> np.ndarray:
        """Positions of ``cat_ids`` in ``cat_ids``; -1 for unknown categories."""
        return _lookup(self.cat_ids, cat_ids)


@dataclass
class Detections:
    """A results list as columns, after the reference's ``loadRes`` rules.

    ``branch`` is ``"bbox"`` or ``"segm"`` (chosen by the first detection). ``area`` is w*h in
    the box branch and NaN (mask area, computed where needed) in the mask branch. ``bbox`` holds
    the given box, or NaN where the detection has none. ``segm`` is the segmentation to use for
    mask IoU: the given one, or in the box branch the box polygon when there is none.
    """

    source: str
    branch: str
    img: np.ndarray
    cat: np.ndarray
    score: np.ndarray
    ids: np.ndarray
    area: np.ndarray
    bbox: np.ndarray
    segm: list[Any] | None
    where: np.ndarray
    warnings: list[str] = field(default_factory=list)
    compressed: bool = False

    @property
    def n(self) -> int:
        return int(self.score.size)

    def subset(self, keep: np.ndarray) -> Detections:
        """The detections where ``keep`` (bool mask or index array) holds, order kept."""
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Detections(
            source=self.source,
            branch=self.branch,
            img=self.img[idx],
            cat=self.cat[idx],
            score=self.score[idx],
            ids=self.ids[idx],
            area=self.area[idx],
            bbox=self.bbox[idx],
            segm=None if self.segm is None else [self.segm[i] for i in idx.tolist()],
            where=self.where[idx],
            warnings=list(self.warnings),
            compressed=self.compressed,
        )


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if sorted_ids.size == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, ids)
    pos_c = np.minimum(pos, sorted_ids.size - 1)
    return np.where(sorted_ids[pos_c] == ids, pos_c, -1).astype(np.int64)


def _int_column(values: list, what: str, path: Path | None, section: str) -> np.ndarray:
    """An int64 column; a non-integer value is a RemError naming its record."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        arr = np.asarray([None])
    if arr.dtype.kind in "iu" and arr.shape == (len(values),):
        return arr.astype(np.int64, copy=False)
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int):
            raise RemError(
                f"{what} must be an integer, got {v!r}", path=path, where=f"{section}[{i}]"
            )
    raise RemError(f"{what} must be integers", path=path, where=section)


def _float_column(values: list, what: str, path: Path | None, section: str) -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64)
        if arr.shape != (len(values),):
            raise ValueError
    except (TypeError, ValueError):
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise RemError(
                    f"{what} must be a number, got {v!r}", path=path, where=f"{section}[{i}]"
                ) from None
        raise RemError(f"{what} must be numbers", path=path, where=section) from None
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise RemError(
            f"{what} must be a finite number, got {values[i]!r}", path=path, where=f"{section}[{i}]"
        )
    return arr


def _boxes(values: list, path: Path | None, section: str) -> np.ndarray:
    """(N, 4) float64 XYWH boxes; rows without a box are NaN."""
    out = np.full((len(values), 4), np.nan)
    if values.count(None) == len(values):
        return out
    have = [i for i, b in enumerate(values) if b is not None]
    if not have:
        return out
    try:
        arr = np.array([values[i] for i in have], dtype=np.float64)
        if arr.shape != (len(have), 4):
            raise ValueError
    except (TypeError, ValueError):
        for i in have:
            b = values[i]
            ok = isinstance(b, list | tuple) and len(b) == 4
            if ok:
                try:
                    np.array(b, dtype=np.float64)
                except (TypeError, ValueError):
                    ok = False
            if not ok:
                raise RemError(
                    f"bbox must be [x, y, width, height], got {b!r}",
                    path=path,
                    where=f"{section}[{i}].bbox",
                ) from None
        raise RemError("bad bbox", path=path, where=section) from None
    if not np.all(np.isfinite(arr)):
        i = have[int(np.flatnonzero(~np.isfinite(arr).all(1))[0])]
        raise RemError("bbox values must be finite", path=path, where=f"{section}[{i}].bbox")
    out[have] = arr
    return out


def _source_name(obj: Any) -> tuple[dict | list, str, Path | None]:
    """(parsed JSON, display name, path) of a path / dataset name / dict / CocoFile / COCO."""
    if isinstance(obj, str | Path):
        from rem_core.io import read_json

        path = Path(obj)
        if not path.exists():
            try:
                from rem_core.datasets import annotation_path

                path = annotation_path(obj)
            except ImportError:
                pass
        return read_json(path), str(obj), path
    dataset = getattr(obj, "dataset", None)
    if isinstance(dataset, dict):
        path = getattr(obj, "path", None)
        return dataset, str(path) if path else "<in-memory>", Path(path) if path else None
    if isinstance(obj, dict | list):
        return obj, "<in-memory>", None
    raise RemError(f"cannot read ground truth / results from a {type(obj).__name__}")


def load_ground_truth(source: Any) -> GroundTruth:
    """Load a ground-truth instances file (path, dataset name, dict, CocoFile or COCO object)."""
    if isinstance(source, GroundTruth):
        return source
    data, name, path = _source_name(source)
    if not isinstance(data, dict):
        raise RemError(
            f"expected a COCO instances object, got a JSON {type(data).__name__}"
            + (" (is this a results file?)" if isinstance(data, list) else ""),
            path=path,
        )
    images = data.get("images")
    if not isinstance(images, list):
        raise RemError("missing the 'images' list", path=path, where="images")
    anns = data.get("annotations") or []
    cats = data.get("categories") or []
    if not isinstance(anns, list) or not isinstance(cats, list):
        raise RemError("'annotations' and 'categories' must be lists", path=path)
    for section, records in (("images", images), ("annotations", anns), ("categories", cats)):
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise RemError(
                    f"expected an object, got {type(r).__name__}",
                    path=path,
                    where=f"{section}[{i}]",
                )

    def need(records: list, key: str, section: str) -> list:
        try:
            return [r[key] for r in records]
        except KeyError:
            i = next(i for i, r in enumerate(records) if key not in r)
            raise RemError(f"missing {key!r}", path=path, where=f"{section}[{i}]") from None

    img_ids_raw = _int_column(need(images, "id", "images"), "image id", path, "images")
    heights = _int_column(need(images, "height", "images"), "image height", path, "images")
    widths = _int_column(need(images, "width", "images"), "image width", path, "images")
    order = np.argsort(img_ids_raw, kind="stable")
    img_ids = img_ids_raw[order]
    dup = np.flatnonzero(img_ids[1:] == img_ids[:-1])
    if dup.size:
        raise RemError(f"duplicate image id {int(img_ids[dup[0]])}", path=path, where="images")

    cat_ids_raw = _int_column(need(cats, "id", "categories"), "category id", path, "categories")
    corder = np.argsort(cat_ids_raw, kind="stable")
    cat_ids = cat_ids_raw[corder]
    if np.any(cat_ids[1:] == cat_ids[:-1]):
        raise RemError("duplicate category id", path=path, where="categories")
    cat_names = [str(cats[i].get("name", cats[i]["id"])) for i in corder.tolist()]
    cat_frequency = [cats[i].get("frequency") for i in corder.tolist()]

    warnings: list[str] = []
    ann_ids = _int_column(need(anns, "id", "annotations"), "annotation id", path, "annotations")
    if ann_ids.size and np.unique(ann_ids).size != ann_ids.size:
        u, c = np.unique(ann_ids, return_counts=True)
        raise RemError(
            f"duplicate annotation id {int(u[c > 1][0])}: pycocotools would silently merge them",
            path=path,
            where="annotations",
        )
    if (ann_ids == 0).any():
        where = int(np.flatnonzero(ann_ids == 0)[0])
        warnings.append(
            f"annotations[{where}] has id 0: pycocotools counts a match to it as a false "
            "positive (ids are tested against 0), and so does this evaluation; number ids from 1"
        )
    a_img = _lookup(
        img_ids, _int_column(need(anns, "image_id", "annotations"), "image_id", path, "annotations")
    )
    a_cat = _lookup(
        cat_ids,
        _int_column(need(anns, "category_id", "annotations"), "category_id", path, "annotations"),
    )
    keep = (a_img >= 0) & (a_cat >= 0)
    if not keep.all():
        n_img = int((a_img < 0).sum())
        n_cat = int(((a_img >= 0) & (a_cat < 0)).sum())
        if n_img:
            warnings.append(f"{n_img} annotations on images missing from 'images' were skipped")
        if n_cat:
            warnings.append(
                f"{n_cat} annotations of categories missing from 'categories' were skipped"
            )
    area_vals = [a.get("area") for a in anns]
    missing_area = [i for i, v in enumerate(area_vals) if v is None]
    for i in missing_area:
        area_vals[i] = float("nan")
    try:
        area = np.array(area_vals, dtype=np.float64)
        if area.shape != (len(anns),):
            raise ValueError
    except (TypeError, ValueError):
        i = next(
            i
            for i, v in enumerate(area_vals)
            if isinstance(v, bool) or not isinstance(v, int | float)
        )
        raise RemError(
            f"area must be a number, got {area_vals[i]!r}",
            path=path,
            where=f"annotations[{i}].area",
        ) from None
    if missing_area:
        warnings.append(f"{len(missing_area)} annotations without 'area' get their mask area")
    iscrowd = np.array([bool(a.get("iscrowd", 0) or 0) for a in anns], dtype=bool)
    ignore = np.array([bool(a.get("ignore", 0) or 0) for a in anns], dtype=bool)
    bbox = _boxes([a.get("bbox") for a in anns], path, "annotations")
    segm = [a.get("segmentation") for a in anns]
    where = np.arange(len(anns))

    idx = np.flatnonzero(keep)
    neg_cats: list[np.ndarray | None] = []
    not_exh: list[np.ndarray | None] = []
    for i in order.tolist():
        img = images[i]
        neg = img.get("neg_category_ids")
        nel = img.get("not_exhaustive_category_ids")
        neg_cats.append(None if neg is None else np.asarray(neg, dtype=np.int64).reshape(-1))
        not_exh.append(None if nel is None else np.asarray(nel, dtype=np.int64).reshape(-1))
    return GroundTruth(
        source=name,
        path=path,
        img_ids=img_ids,
        heights=heights[order],
        widths=widths[order],
        cat_ids=cat_ids,
        cat_names=cat_names,
        cat_frequency=cat_frequency,
        ann_ids=ann_ids[idx],
        ann_img=a_img[idx],
        ann_cat=a_cat[idx],
        area=area[idx],
        iscrowd=iscrowd[idx],
        ignore=ignore[idx],
        bbox=bbox[idx],
        segm=[segm[i] for i in idx.tolist()],
        ann_where=where[idx],
        neg_cats=neg_cats,
        not_exhaustive=not_exh,
        warnings=warnings,
    )


def read_results(source: Any) -> tuple[list[dict], str, Path | None]:
    """The raw results list of a path or an in-memory list (not copied)."""
    if isinstance(source, str | Path):
        from rem_core.io import read_json

        path = Path(source)
        data = read_json(path)
        name = str(source)
    elif isinstance(source, Sequence) and not isinstance(source, str | bytes):
        data, name, path = source, "<in-memory>", None
    else:
        raise RemError(
            f"results must be a path or a list of detections, got {type(source).__name__}"
        )
    if isinstance(data, dict):
        hint = " (this looks like an instances file)" if "annotations" in data else ""
        raise RemError(f"a results file is a JSON list of detections{hint}", path=path)
    if not isinstance(data, list):
        data = list(data)
    return data, name, path


def build_detections(
    results: list[dict],
    gt: GroundTruth,
    *,
    source: str = "<in-memory>",
    path: Path | None = None,
    protocol: str = "coco",
    drop_bbox: bool = False,
    strict_categories: bool = True,
    need_segm: bool = True,
) -> Detections:
    """Columns of a results list, with ``loadRes`` semantics (see the module docstring).

    ``drop_bbox`` ignores result boxes, as the COCO-ReM evaluator does for mask evaluation, so
    detection areas are mask areas. ``strict_categories`` makes an unknown category id an
    error; otherwise such detections are skipped like the references do.
    """
    n = len(results)
    if set(map(type, results)) - {dict}:
        for i, r in enumerate(results):
            if not isinstance(r, dict):
                raise RemError(
                    f"expected a detection object, got {type(r).__name__}",
                    path=path,
                    where=f"[{i}]",
                )
    warnings: list[str] = []
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Detections(
            source=source,
            branch="segm",
            img=empty,
            cat=empty.copy(),
            score=np.zeros(0),
            ids=empty.copy(),
            area=np.zeros(0),
            bbox=np.zeros((0, 4)),
            segm=[],
            where=empty.copy(),
            warnings=warnings,
        )

    def need(key: str) -> list:
        try:
            return list(map(itemgetter(key), results))
        except KeyError:
            i = next(i for i, r in enumerate(results) if key not in r)
            raise RemError(f"missing {key!r}", path=path, where=f"[{i}]") from None

    image_ids = _int_column(need("image_id"), "image_id", path, "")
    cat_raw = _int_column(need("category_id"), "category_id", path, "")
    score = _float_column(need("score"), "score", path, "")
    img = gt.image_index(image_ids)
    bad = np.flatnonzero(img < 0)
    if bad.size:
        i = int(bad[0])
        raise RemError(
            f"image {int(image_ids[i])} is not in the ground truth {gt.source}"
            + (f" ({bad.size} detections name unknown images)" if bad.size > 1 else ""),
            path=path,
            where=f"[{i}].image_id",
        )
    cat = gt.category_index(cat_raw)
    unknown = np.flatnonzero(cat < 0)
    if unknown.size:
        i = int(unknown[0])
        if strict_categories:
            raise RemError(
                f"category {int(cat_raw[i])} is not in the ground truth {gt.source}"
                + (
                    f" ({unknown.size} detections name unknown categories)"
                    if unknown.size > 1
                    else ""
                ),
                path=path,
                where=f"[{i}].category_id",
            )
        warnings.append(f"{unknown.size} detections of unknown categories were skipped")

    first = results[0]
    if protocol == "lvis":
        box_branch = "bbox" in first
    else:
        box_branch = "bbox" in first and first["bbox"] != []
    if drop_bbox:
        box_branch = False
    if not box_branch and "segmentation" not in first:
        if "bbox" in first:
            raise RemError(
                "detections have an empty 'bbox' and no 'segmentation'", path=path, where="[0]"
            )
        raise RemError(
            "detections need 'bbox' or 'segmentation' (keypoint and caption results are not "
            "supported)",
            path=path,
            where="[0]",
        )
    boxes_raw = [None] * n if drop_bbox else list(map(dict.get, results, repeat("bbox")))
    if box_branch:
        missing = [i for i, b in enumerate(boxes_raw) if b is None]
        if missing:
            raise RemError(
                "missing 'bbox': the first detection has a box, so every detection needs one "
                "(pycocotools takes the box branch for all of them)",
                path=path,
                where=f"[{missing[0]}]",
            )
    bbox = _boxes(boxes_raw, path, "")
    segm: list[Any] | None
    if box_branch:
        area = bbox[:, 2] * bbox[:, 3]
        segm = []
        for r, b in zip(results, boxes_raw):
            s = r.get("segmentation")
            if s is None:
                x1, y1, w, h = b
                x2, y2 = x1 + w, y1 + h
                s = [[x1, y1, x1, y2, x2, y2, x2, y1]]
            segm.append(s)
    else:
        area = np.full(n, np.nan)
        segm = list(map(dict.get, results, repeat("segmentation")))
        missing = [i for i, s in enumerate(segm) if s is None]
        if missing and need_segm:
            raise RemError(
                "missing 'segmentation': the first detection has no box, so every detection "
                "needs a mask",
                path=path,
                where=f"[{missing[0]}]",
            )
    compressed = _check_segm_sizes(segm, img, gt, path) if (need_segm or not box_branch) else False
    return Detections(
        source=source,
        branch="bbox" if box_branch else "segm",
        img=img,
        cat=cat,
        score=score,
        ids=np.arange(1, n + 1, dtype=np.int64),
        area=area,
        bbox=bbox,
        segm=segm,
        where=np.arange(n),
        warnings=warnings,
        compressed=compressed,
    )


def detections_from_loaded(
    anns: list[dict], gt: GroundTruth, *, source: str = "<loaded>"
) -> Detections:
    """Columns of results already processed by a ``loadRes`` (pycocotools' own COCO object):
    their ``id``, ``area``, ``bbox`` and ``segmentation`` are taken as they are."""
    n = len(anns)
    if n == 0:
        return build_detections([], gt, source=source)

    def need(key: str) -> list:
        try:
            return list(map(itemgetter(key), anns))
        except KeyError:
            i = next(i for i, r in enumerate(anns) if key not in r)
            raise RemError(f"missing {key!r}", where=f"[{i}]") from None

    img = gt.image_index(_int_column(need("image_id"), "image_id", None, ""))
    if (img < 0).any():
        i = int(np.flatnonzero(img < 0)[0])
        raise RemError(f"image {anns[i]['image_id']!r} is not in the ground truth", where=f"[{i}]")
    segm = list(map(dict.get, anns, repeat("segmentation")))
    return Detections(
        source=source,
        branch="loaded",
        img=img,
        cat=gt.category_index(_int_column(need("category_id"), "category_id", None, "")),
        score=_float_column(need("score"), "score", None, ""),
        ids=_int_column(need("id"), "id", None, ""),
        area=_float_column(need("area"), "area", None, ""),
        bbox=_boxes(list(map(dict.get, anns, repeat("bbox"))), None, ""),
        segm=segm,
        where=np.arange(n),
        compressed=False,
    )


def _check_segm_sizes(segm: list, img: np.ndarray, gt: GroundTruth, path: Path | None) -> bool:
    """An RLE must have its image's (height, width); anything else is a user error.

    Returns whether every segmentation is compressed RLE (the fast path of IoU computation).
    """
    try:
        # Fast path: every segmentation is an RLE dict.
        size_lists = list(map(itemgetter("size"), segm))
        if set(map(type, size_lists)) != {list} or set(map(len, size_lists)) != {2}:
            raise ValueError
        sizes = np.fromiter(chain.from_iterable(size_lists), dtype=np.int64, count=2 * len(segm))
        sizes = sizes.reshape(-1, 2)
        rle_rows = None
        compressed = set(map(type, map(itemgetter("counts"), segm))) == {str}
    except (KeyError, TypeError, ValueError, IndexError):
        rle_rows = [i for i, sg in enumerate(segm) if isinstance(sg, Mapping)]
        compressed = False
        for i in rle_rows:
            sz = segm[i].get("size")
            if not (
                isinstance(sz, list | tuple)
                and len(sz) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in sz)
            ):
                raise RemError(
                    f"RLE 'size' must be [height, width], got {sz!r}",
                    path=path,
                    where=f"[{i}].segmentation.size",
                ) from None
        if not rle_rows:
            return False
        sizes = np.array([segm[i]["size"] for i in rle_rows], dtype=np.int64).reshape(-1, 2)
    rows = np.arange(len(segm)) if rle_rows is None else np.asarray(rle_rows)
    want_h = gt.heights[img[rows]]
    want_w = gt.widths[img[rows]]
    bad = np.flatnonzero((sizes[:, 0] != want_h) | (sizes[:, 1] != want_w))
    if bad.size:
        j = int(bad[0])
        i = int(rows[j])
        raise RemError(
            f"RLE size {sizes[j].tolist()} does not match image {int(gt.img_ids[img[i]])} "
            f"({int(want_h[j])}x{int(want_w[j])}, height x width)"
            + (f"; {bad.size} detections have this problem" if bad.size > 1 else ""),
            path=path,
            where=f"[{i}].segmentation.size",
        )
    return compressed
