"""Vectorised COCO-like populations: image sizes, object counts, categories, sizes and shapes.

These feed the JSON-only benchmark files (no images are drawn), so everything is NumPy over whole
arrays of objects. Proportions follow COCO 2017: most images are 640 px on the long side, about
41% / 34% / 25% of instances are small / medium / large (area < 32², < 96², larger), "person" is
by far the most common category, about 1% of instances are crowd regions and about 1% of images
have no annotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rem_core.synth.coco_categories import COCO_CATEGORIES

# (width, height, share) of common COCO image sizes.
IMAGE_SIZES = (
    (640, 480, 0.42),
    (640, 427, 0.20),
    (480, 640, 0.10),
    (640, 426, 0.06),
    (427, 640, 0.05),
    (500, 375, 0.05),
    (640, 640, 0.04),
    (612, 612, 0.04),
    (640, 428, 0.04),
)
AREA_CLASS_SHARES = (0.41, 0.34, 0.25)  # small, medium, large
AREA_CLASS_BOUNDS = ((8.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 250_000.0))
POINTS_PER_CLASS = ((10, 24), (14, 40), (24, 60))  # polygon vertex counts, inclusive


def image_sizes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(widths, heights) int64 arrays of n COCO-like image sizes."""
    shares = np.array([s for _, _, s in IMAGE_SIZES])
    pick = rng.choice(len(IMAGE_SIZES), size=n, p=shares / shares.sum())
    widths = np.array([w for w, _, _ in IMAGE_SIZES])[pick]
    heights = np.array([h for _, h, _ in IMAGE_SIZES])[pick]
    return widths, heights


def image_records(
    rng: np.random.Generator, num_images: int, split: str
) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """COCO image records with sparse ids (as COCO's), plus their ids, widths and heights."""
    widths, heights = image_sizes(rng, num_images)
    ids = np.sort(rng.choice(max(num_images * 5, 10), size=num_images, replace=False) + 1)
    licenses = rng.integers(1, 9, size=num_images)
    records = [
        {
            "license": lic,
            "file_name": f"{i:012d}.jpg",
            "coco_url": f"http://images.example.invalid/{split}/{i:012d}.jpg",
            "height": h,
            "width": w,
            "date_captured": "2013-11-14 16:28:13",
            "flickr_url": f"http://farm.example.invalid/{i}.jpg",
            "id": i,
        }
        for i, w, h, lic in zip(ids.tolist(), widths.tolist(), heights.tolist(), licenses.tolist())
    ]
    return records, ids, widths, heights


LICENSES = [
    {"id": i, "name": f"synthetic license {i}", "url": f"https://example.invalid/license/{i}"}
    for i in range(1, 9)
]


def annotations_per_image(
    rng: np.random.Generator, num_images: int, num_annotations: int, empty_fraction: float = 0.01
) -> np.ndarray:
    """(num_images,) int64 counts summing to num_annotations, with a long tail and about
    ``empty_fraction`` of images (at least those the total cannot reach) left empty."""
    counts = np.zeros(num_images, dtype=np.int64)
    if num_images == 0 or num_annotations == 0:
        return counts
    n_full = max(1, min(num_images, num_annotations, round(num_images * (1 - empty_fraction))))
    full = rng.choice(num_images, size=n_full, replace=False)
    counts[full] = 1
    # Gamma-distributed image "busyness" gives COCO's skew (most images few objects, some ~50).
    weights = rng.gamma(0.9, 1.0, size=n_full)
    extra = rng.multinomial(num_annotations - n_full, weights / weights.sum())
    counts[full] += extra
    return counts


def category_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) COCO category ids; person about a quarter, the rest with a skewed spread."""
    ids = np.array([c for c, _, _ in COCO_CATEGORIES])
    weights = np.random.default_rng(12345).gamma(0.7, 1.0, size=len(ids))
    weights[0] = weights[1:].sum() / 3  # person: 25% of instances
    return ids[rng.choice(len(ids), size=n, p=weights / weights.sum())]


@dataclass(frozen=True)
class Ellipses:
    """Object outlines as ellipses in their image: centre, radii (pixels), area class 0/1/2."""

    cx: np.ndarray
    cy: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    size_class: np.ndarray

    def take(self, index: np.ndarray) -> Ellipses:
        """The ellipses at ``index`` (int or bool array)."""
        return Ellipses(
            self.cx[index], self.cy[index], self.rx[index], self.ry[index], self.size_class[index]
        )

    def where(self, condition: np.ndarray, other: Ellipses) -> Ellipses:
        """Per object, ``other``'s ellipse where ``condition`` holds, else this one's."""
        return Ellipses(
            *(
                np.where(condition, getattr(other, f), getattr(self, f))
                for f in ("cx", "cy", "rx", "ry", "size_class")
            )
        )


def object_ellipses(
    rng: np.random.Generator, widths: np.ndarray, heights: np.ndarray, min_class: int = 0
) -> Ellipses:
    """One ellipse per object on images of the given (W, H); COCO's small/medium/large mix.

    ``min_class`` forces at least that area class (crowd regions are never small).
    """
    n = widths.size
    shares = np.array(AREA_CLASS_SHARES[min_class:])
    size_class = rng.choice(len(shares), size=n, p=shares / shares.sum()) + min_class
    lo = np.array([b[0] for b in AREA_CLASS_BOUNDS])[size_class]
    hi = np.minimum(np.array([b[1] for b in AREA_CLASS_BOUNDS])[size_class], 0.6 * widths * heights)
    area = np.exp(rng.uniform(np.log(lo), np.log(np.maximum(hi, lo * 1.01))))
    aspect = np.exp(np.clip(rng.normal(0, 0.35, size=n), -1.0, 1.0))
    r = np.sqrt(area / np.pi)
    rx, ry = r * np.sqrt(aspect), r / np.sqrt(aspect)
    cx = rng.uniform(np.minimum(rx * 0.4, widths / 2), np.maximum(widths - rx * 0.4, widths / 2))
    cy = rng.uniform(np.minimum(ry * 0.4, heights / 2), np.maximum(heights - ry * 0.4, heights / 2))
    return Ellipses(cx, cy, rx, ry, size_class)


def star_polygons(
    rng: np.random.Generator, shapes: Ellipses, widths: np.ndarray, heights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Star-convex polygons around the ellipses, clipped to the image, 2-decimal coordinates.

    Returns ``(coords, offsets)``: polygon i is ``coords[offsets[i]:offsets[i+1]]`` as a flat
    ``[x1, y1, x2, y2, ...]`` float64 array (10-60 vertices, more for larger objects).
    """
    n = shapes.cx.size
    lo = np.array([p[0] for p in POINTS_PER_CLASS])[shapes.size_class]
    hi = np.array([p[1] for p in POINTS_PER_CLASS])[shapes.size_class]
    n_points = rng.integers(lo, hi + 1)
    owner = np.repeat(np.arange(n), n_points)
    starts = np.concatenate(([0], np.cumsum(n_points)[:-1]))
    k = np.arange(owner.size) - starts[owner]
    angle = 2 * np.pi * (k + rng.uniform(-0.35, 0.35, size=owner.size)) / n_points[owner]
    radius = np.clip(1 + 0.12 * rng.standard_normal(owner.size), 0.7, 1.3)
    x = np.clip(shapes.cx[owner] + shapes.rx[owner] * radius * np.cos(angle), 0, widths[owner])
    y = np.clip(shapes.cy[owner] + shapes.ry[owner] * radius * np.sin(angle), 0, heights[owner])
    coords = np.empty(2 * owner.size, dtype=np.float64)
    coords[0::2] = np.round(x, 2)
    coords[1::2] = np.round(y, 2)
    return coords, 2 * np.concatenate(([0], np.cumsum(n_points)))


def polygon_boxes_and_areas(
    coords: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) XYWH boxes and (N,) shoelace areas of flat polygons laid out as ``star_polygons``."""
    x, y = coords[0::2], coords[1::2]
    starts = offsets[:-1] // 2
    x0, x1 = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
    y0, y1 = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    n_points = np.diff(offsets) // 2
    owner = np.repeat(np.arange(n_points.size), n_points)
    nxt = np.arange(x.size) + 1
    ends = starts + n_points
    nxt[ends - 1] = starts  # the last vertex closes back to the first
    cross = x * y[nxt] - x[nxt] * y
    areas = 0.5 * np.abs(np.bincount(owner, weights=cross, minlength=n_points.size))
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1), areas


@dataclass(frozen=True)
class ColumnRles:
    """Uncompressed RLEs of ellipse-like blobs, one vertical run per image column.

    RLE i has run lengths ``counts[offsets[i]:offsets[i+1]]`` (int64, canonical: no empty run
    except possibly the first); ``areas`` and XYWH ``boxes`` are exact for those masks.
    """

    counts: np.ndarray
    offsets: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray


def column_rles(
    rng: np.random.Generator, shapes: Ellipses, widths: np.ndarray, heights: np.ndarray
) -> ColumnRles:
    """Rasterise wobbly ellipses straight into column-major runs, without any pixel array."""
    n = shapes.cx.size
    x_first = np.clip(np.ceil(shapes.cx - shapes.rx - 0.5), 0, widths - 1).astype(np.int64)
    x_last = np.clip(np.floor(shapes.cx + shapes.rx - 0.5), 0, widths - 1).astype(np.int64)
    x_last = np.maximum(x_last, x_first)
    n_cols = x_last - x_first + 1
    owner = np.repeat(np.arange(n), n_cols)
    col = x_first[owner] + np.arange(owner.size) - np.repeat(np.cumsum(n_cols) - n_cols, n_cols)
    u = (col + 0.5 - shapes.cx[owner]) / shapes.rx[owner]
    freq, phase = rng.uniform(0.05, 0.4, size=n), rng.uniform(0, 2 * np.pi, size=n)
    wobble = 1 + 0.1 * np.sin(freq[owner] * col + phase[owner])
    half = shapes.ry[owner] * np.sqrt(np.clip(1 - u**2, 0, 1)) * wobble
    h = heights[owner]
    top = np.clip(np.round(shapes.cy[owner] - half), 0, h - 1).astype(np.int64)
    bottom = np.clip(np.round(shapes.cy[owner] + half), top + 1, h).astype(np.int64)
    first = col * h + top  # column-major index of each run's first pixel
    stop = col * h + bottom
    areas = np.bincount(owner, weights=bottom - top, minlength=n).astype(np.int64)
    starts = np.cumsum(n_cols) - n_cols
    boxes = np.stack(
        [
            x_first,
            np.minimum.reduceat(top, starts),
            n_cols,
            np.maximum.reduceat(bottom, starts) - np.minimum.reduceat(top, starts),
        ],
        axis=1,
    ).astype(np.float64)
    # Boundaries per RLE: 0, first_0, stop_0, first_1, ..., stop_last, H*W. A run that ends at
    # the bottom of a column and one starting at the top of the next are one run: drop the
    # empty zero run between them to stay canonical.
    bounds = np.empty(2 * owner.size, dtype=np.int64)
    bounds[0::2], bounds[1::2] = first, stop
    bound_owner = np.repeat(owner, 2)
    touching = (first[1:] == stop[:-1]) & (owner[1:] == owner[:-1])
    keep = np.ones(bounds.size, dtype=bool)
    keep[1:-1][np.repeat(touching, 2)] = False  # stop_{j-1} and first_j
    bounds, bound_owner = bounds[keep], bound_owner[keep]
    per = np.bincount(bound_owner, minlength=n) + 2
    full_off = np.concatenate(([0], np.cumsum(per)))
    full = np.empty(full_off[-1], dtype=np.int64)
    full[full_off[:-1]] = 0
    full[full_off[1:] - 1] = widths * heights
    inner_off = np.concatenate(([0], np.cumsum(per - 2)))
    full[full_off[bound_owner] + 1 + np.arange(bounds.size) - inner_off[bound_owner]] = bounds
    diffs = np.diff(full)
    diff_owner = np.repeat(np.arange(n), per)[:-1]
    valid = np.ones(diffs.size, dtype=bool)
    valid[full_off[1:-1] - 1] = False  # between one RLE's H*W and the next RLE's 0
    last = full_off[1:] - 2
    valid[last] &= diffs[last] != 0  # a mask ending on the last pixel has no final zero run
    counts = diffs[valid]
    per_rle = np.bincount(diff_owner[valid], minlength=n)
    return ColumnRles(counts, np.concatenate(([0], np.cumsum(per_rle))), areas, boxes)
