"""Finding the image file of a COCO / LVIS image record under one or more image folders.

COCO names an image by ``file_name``; LVIS has no ``file_name`` and names its images only by
``coco_url`` (from both ``train2017`` and ``val2017``); some files hold absolute paths or a
split prefix the user's folder does not have. So a record is looked up under several names,
most specific first. A ``file_name`` that is absolute or climbs out with ``..`` is never joined
to a folder as it stands (data must not name files outside the image folder); only its last
component is tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath


def safe_relative(name: str) -> PurePosixPath | None:
    """``name`` as a relative POSIX path that stays inside its folder, or None."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name or pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
        return None
    return pure


def escapes_root(record: dict) -> bool:
    """Whether the record's ``file_name`` is absolute or climbs out of its folder."""
    name = record.get("file_name")
    return isinstance(name, str) and bool(name) and safe_relative(name) is None


def candidate_names(record: dict) -> list[PurePosixPath]:
    """Relative paths to try for an image record, most specific first, without duplicates.

    ``file_name`` (when safe), its last component (the folder may already be the split
    folder), the last two and the last component of ``coco_url`` (else ``flickr_url``), then
    COCO's ``{id:012d}.jpg``.
    """
    names: list[str] = []
    file_name = record.get("file_name")
    if isinstance(file_name, str) and file_name:
        names += [file_name, PurePosixPath(file_name.replace("\\", "/")).name]
    url = record.get("coco_url") or record.get("flickr_url")
    if isinstance(url, str) and url:
        parts = PurePosixPath(url.split("?")[0]).parts
        names += ["/".join(parts[-2:]), parts[-1]] if len(parts) >= 2 else list(parts)
    if isinstance(record.get("id"), int):
        names.append(f"{record['id']:012d}.jpg")
    return [rel for name in dict.fromkeys(names) if (rel := safe_relative(name)) is not None]


def find_image_file(record: dict, roots: Sequence[Path]) -> Path | None:
    """The first existing file for ``record`` (names in order, each under every root)."""
    for rel in candidate_names(record):
        for root in roots:
            path = Path(root) / rel
            if path.is_file():
                return path
    return None


def image_name(record: dict) -> str:
    """A short name for messages and output files: ``file_name``, else the URL's last part,
    else ``{id:012d}.jpg``."""
    name = record.get("file_name")
    if isinstance(name, str) and name:
        return name
    url = record.get("coco_url") or record.get("flickr_url")
    if isinstance(url, str) and url:
        return url.split("?")[0].rsplit("/", 1)[-1]
    return f"{int(record['id']):012d}.jpg"
