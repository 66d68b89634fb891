"""Finding and reading the image of a COCO/LVIS image record, with per-image problems.

The reference built every path as ``<image-dir>/<zero-padded id>.jpg`` from one folder, which
cannot serve LVIS (its images come from train2017 and val2017). Here a record is looked up in
each root under the names of :func:`rem_core.image_files.candidate_names` (``file_name``, then
``coco_url``'s ``val2017/000000397133.jpg`` and ``000000397133.jpg``, then the zero-padded id).
A ``file_name`` that is absolute or climbs out of the root with ``..`` is refused.

Problems with one image (missing, unreadable, wrong size, unsafe path) raise
:class:`ImageProblem`; the runner records them for that image and carries on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rem_core.image_files import candidate_names, escapes_root, find_image_file

ExifMode = Literal["apply", "ignore", "auto"]


class ImageProblem(Exception):
    """One image cannot be used; ``kind`` is a short key counted in the run's report."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def find_image(image: dict, roots: Sequence[Path]) -> Path:
    """The first existing file for ``image`` under ``roots``; raises :class:`ImageProblem`."""
    if escapes_root(image):
        name = image["file_name"]
        raise ImageProblem("unsafe-path", f"file_name {name!r} escapes the image directory")
    found = find_image_file(image, roots)
    if found is not None:
        return found
    tried = [str(Path(root) / rel) for rel in candidate_names(image) for root in roots]
    where = ", ".join(tried[:3]) + (" ..." if len(tried) > 3 else "")
    raise ImageProblem("missing", f"image file not found (tried {where})")


def read_rgb(path: Path, expected: tuple[int, int] | None, exif: ExifMode = "auto") -> np.ndarray:
    """The (H, W, 3) uint8 RGB pixels of ``path``, oriented per ``exif`` and checked.

    ``apply`` rotates by the EXIF orientation tag as the reference did (detectron2
    ``read_image``); ``ignore`` keeps the stored pixel order; ``auto`` applies it unless only the
    stored order matches the (height, width) of the JSON record, since the masks were drawn on
    pixels of that size. A size that matches neither raises ``size-mismatch``.
    """
    try:
        with Image.open(path) as img:
            img.load()
            raw = img
            oriented = ImageOps.exif_transpose(img) if exif != "ignore" else img
            chosen = oriented
            if expected is not None and exif == "auto":
                h, w = expected
                if (oriented.height, oriented.width) != (h, w) and (raw.height, raw.width) == (
                    h,
                    w,
                ):
                    chosen = raw
            pixels = np.asarray(chosen.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageProblem("corrupt", f"cannot decode {os.fspath(path)}: {reason}") from None
    if expected is not None and pixels.shape[:2] != tuple(expected):
        raise ImageProblem(
            "size-mismatch",
            f"image is {pixels.shape[0]}x{pixels.shape[1]} (HxW) but the record says "
            f"{expected[0]}x{expected[1]}",
        )
    return pixels
