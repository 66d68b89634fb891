"""Finding, reading, resizing and writing image files.

Images are handled as RGB uint8 arrays of shape (H, W, 3) (what matplotlib and notebooks show);
OpenCV's BGR order stays inside this module.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from rem_core.image_files import find_image_file, image_name


def locate_image(image_dir: Path, record: dict) -> Path | None:
    """The file of ``record`` under ``image_dir`` (see :mod:`rem_core.image_files`), or None."""
    return find_image_file(record, [image_dir])


def read_rgb(path: Path) -> np.ndarray | None:
    """An (H, W, 3) RGB uint8 image, or None if the file cannot be decoded.

    Grey and RGBA files are converted; 16-bit files are scaled to 8 bits.
    """
    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_image(image: np.ndarray, suffix: str, quality: int = 90) -> bytes:
    """Encode an RGB image as the format named by ``suffix`` (``.jpg``, ``.png``, ``.webp``)."""
    suffix = suffix.lower()
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    elif suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV cannot write {suffix} images")
    return buf.tobytes()


def write_image(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """Write an RGB image, format from the file suffix; readers never see a partial file.

    Unlike :func:`rem_core.atomic.atomic_write_bytes` this does not fsync: a run writes
    thousands of images that can be drawn again, and a sync per image costs more than drawing
    it. The temporary-file-and-rename still means a file is either whole or absent.
    """
    data = encode_image(image, path.suffix, quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    """Shrink (never enlarge) to at most ``max_width`` pixels wide, keeping the aspect ratio."""
    h, w = image.shape[:2]
    if w <= max_width:
        return image
    new_h = max(1, round(h * max_width / w))
    return cv2.resize(image, (max_width, new_h), interpolation=cv2.INTER_AREA)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(text: str) -> str:
    """A file-name stem made of ``[A-Za-z0-9._-]`` only, so data can never name a path."""
    stem = _UNSAFE.sub("_", text).strip("._") or "image"
    return stem[:120]


def output_name(record: dict, suffixes: list[str], default_ext: str | None = None) -> str:
    """Output file name for an image: its base name, ``_suffix`` per suffix, then the extension.

    This is COCO-ReM's naming: ``x.jpg`` with class ``dog`` and suffix ``rem`` gives
    ``x_dog_rem.jpg``.
    """
    base = PurePosixPath(image_name(record).replace("\\", "/")).name
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = (default_ext or (f".{ext}" if ext else ".jpg")).lower()
    if ext not in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"):
        ext = ".jpg"
    parts = [safe_stem(stem)] + [safe_stem(s) for s in suffixes if s]
    return "_".join(parts) + ext
