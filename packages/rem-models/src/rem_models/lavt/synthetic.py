"""A synthetic referring dataset: coloured shapes named by sentences such as "the red circle".

Each image holds two shapes of different colour and kind, one in the left half and one in the
right half, on a grey background. Every shape is a ref with three sentences naming it by
colour + kind, by colour + side and by kind + side ("the red circle", "the red shape on the
left", "the circle on the left"), so only a model that reads the sentence can tell which shape
is meant: ignoring the text caps the expected IoU near 0.5. Deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rem_core.refer import write_referring_json
from rem_core.schemas import ReferringSample

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 220),
    "yellow": (230, 210, 40),
}
SHAPES = ("circle", "square", "triangle")
SIDES = ("left", "right")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def vocabulary() -> list[str]:
    """Every word the sentences use, after BERT's special tokens (a WordPiece vocab.txt)."""
    words = ["the", "on", "shape", *COLORS, *SHAPES, *SIDES]
    return [*SPECIAL_TOKENS, *words]


def write_vocab(path: str | Path) -> Path:
    path = Path(path)
    path.write_text("\n".join(vocabulary()) + "\n", encoding="utf-8")
    return path


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[float]:
    if kind == "circle":
        points = [
            (cx + r * math.cos(2 * math.pi * k / 24), cy + r * math.sin(2 * math.pi * k / 24))
            for k in range(24)
        ]
    elif kind == "square":
        points = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    else:
        points = [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    return [round(v, 2) for p in points for v in p]


@dataclass(frozen=True)
class SyntheticReferring:
    """Paths of a generated dataset: images, the referring JSON and the vocabulary."""

    image_dir: Path
    refs: Path
    vocab: Path
    samples: list[ReferringSample]


def make_referring_sample(
    out_dir: str | Path,
    num_images: int = 40,
    *,
    size: int = 64,
    seed: int = 0,
    split: str = "train",
    first_ref_id: int = 1,
    radius: tuple[float, float] = (0.12, 0.2),
) -> SyntheticReferring:
    """Write ``num_images`` PNGs, ``refs.json`` (two refs per image) and ``vocab.txt``.

    ``radius``: range of the shapes' radius as a share of ``size``; at most (size / 2 - 2) / 2
    pixels, so each shape fits inside its half with a gap between the two.
    """
    if radius[1] * size > (size / 2 - 2) / 2 or radius[0] <= 0 or radius[0] > radius[1]:
        raise ValueError(f"radius {radius} does not fit two shapes side by side at size {size}")
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples: list[ReferringSample] = []
    ref_id = first_ref_id
    for index in range(num_images):
        image = Image.new("RGB", (size, size), (128, 128, 128))
        draw = ImageDraw.Draw(image)
        colors = rng.choice(list(COLORS), size=2, replace=False)
        kinds = rng.choice(SHAPES, size=2, replace=False)
        name = f"{split}_{index:05d}.png"
        image_id = first_ref_id + index
        for side, color, kind in zip(SIDES, colors, kinds, strict=True):
            r = size * rng.uniform(*radius)
            half = size / 2
            lo = r + 1 if side == "left" else half + r + 1
            cx = rng.uniform(lo, lo + half - 2 * r - 2)
            cy = rng.uniform(r + 1, size - r - 1)
            polygon = _polygon(str(kind), cx, cy, r)
            draw.polygon(polygon, fill=COLORS[str(color)])
            xs, ys = polygon[0::2], polygon[1::2]
            sentences = [
                f"the {color} {kind}",
                f"the {color} shape on the {side}",
                f"the {kind} on the {side}",
            ]
            samples.append(
                ReferringSample(
                    ref_id=ref_id,
                    image_id=image_id,
                    file_name=name,
                    height=size,
                    width=size,
                    split=split,  # type: ignore[arg-type]
                    category_id=SHAPES.index(str(kind)) + 1,
                    ann_id=ref_id,
                    bbox=(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)),
                    segmentation=[polygon],
                    sentences=[
                        {"sent": s, "sent_id": 3 * ref_id + k, "raw": s}
                        for k, s in enumerate(sentences)
                    ],
                )
            )
            ref_id += 1
        image.save(image_dir / name)
    refs = write_referring_json(out / "refs.json", samples, info={"generator": "rem lavt"})
    return SyntheticReferring(image_dir, refs, write_vocab(out / "vocab.txt"), samples)
