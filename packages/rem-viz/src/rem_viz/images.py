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


def file_name_of(record: dict) -> str:
    """An image record's file name: ``file_name``, else the tail of ``coco_url`` (LVIS), else the
    COCO convention ``{id:012d}.jpg``."""
    name = record.get("file_name")
    if isinstance(name, str) and name:
        return name
    url = record.get("coco_url")
    if isinstance(url, str) and url:
        return url.split("?")[0].rsplit("/", 1)[-1]
    return f"{int(record['id']):012d}.jpg"


def _inside(name: str) -> PurePosixPath | None:
    """``name`` as a relative path, or None when it is absolute or climbs out with ``..``."""
    rel = PurePosixPath(name.replace("\\", "/"))
    if not name or rel.is_absolute() or ".." in rel.parts:
        return None
    return rel


def candidate_names(record: dict) -> list[PurePosixPath]:
    """Relative paths to try for an image record, most specific first.

    ``file_name`` (and its last part, when the image folder already is its split folder), then
    the last two and the last part of ``coco_url`` (LVIS names images only by URL, from both
    ``train2017`` and ``val2017``), then ``{id:012d}.jpg``.
    """
    names: list[str] = []
    file_name = record.get("file_name")
    if isinstance(file_name, str) and file_name:
        names += [file_name, PurePosixPath(file_name.replace("\\", "/")).name]
    url = record.get("coco_url")
    if isinstance(url, str) and url:
        parts = PurePosixPath(url.split("?")[0]).parts
        names += ["/".join(parts[-2:]), parts[-1]] if len(parts) >= 2 else list(parts)
    if isinstance(record.get("id"), int):
        names.append(f"{record['id']:012d}.jpg")
    return [rel for name in dict.fromkeys(names) if (rel := _inside(name)) is not None]


def locate_image(image_dir: Path, record: dict) -> Path | None:
    """The file of ``record`` under ``image_dir`` (see :func:`candidate_names`), or None."""
    for rel in candidate_names(record):
        candidate = image_dir / rel
        if candidate.is_file():
            return candidate
    return None


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
    base = PurePosixPath(file_name_of(record).replace("\\", "/")).name
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = (default_ext or (f".{ext}" if ext else ".jpg")).lower()
    if ext not in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"):
        ext = ".jpg"
    parts = [safe_stem(stem)] + [safe_stem(s) for s in suffixes if s]
    return "_".join(parts) + ext
