"""Pretrained weights as data: where a file lives, how to check it, what it scored.

A :class:`Weights` record is attached to one registered architecture (see
:mod:`rem_models.registry`). Keeping the URL, checksum, format and published metrics in one
validated record lets the CLI list them, the tests check parameter counts against them, and
:func:`fetch_weights` download and verify a file without any family-specific code.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

FileFormat = Literal["detectron2-pkl", "torch", "safetensors", "mmcv"]
"""How a weights file is serialised; it picks the loader in :mod:`rem_models.checkpoints`.

``detectron2-pkl``: pickled ``{"model": {name: numpy array}, ...}`` (restricted unpickler).
``torch``: ``torch.save`` output (loaded with ``weights_only=True``).
``safetensors``: a safetensors file. ``mmcv``: a torch file holding ``{meta, state_dict}``.
"""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class Weights(BaseModel):
    """One published weights file for one architecture.

    ``num_params`` is the parameter count of the architecture the file loads into (not of the
    file, which may hold optimizer state); tests compare it with a meta-device build.
    ``metrics`` holds published numbers, e.g. ``{"coco/box_ap": 51.6, "coco/mask_ap": 45.9}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    url: str = Field(min_length=1)
    sha256: str | None = None
    file_format: FileFormat
    num_params: int | None = Field(default=None, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)
    recipe: str = ""
    source: str = ""

    @field_validator("sha256")
    @classmethod
    def _check_sha256(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lower()
        if not _SHA256.fullmatch(value):
            raise ValueError("sha256 must be 64 hexadecimal digits")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "file") or not parts.path.rstrip("/"):
            raise ValueError("url must be an http(s) or file URL naming a file")
        return value

    @property
    def file_name(self) -> str:
        """The last component of the URL path, e.g. ``model_final_61ccd1.pkl``."""
        return urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1]


def default_cache_path(weights: Weights, cache_dir: Path) -> Path:
    """Where ``weights`` is stored under ``cache_dir``.

    Released files often share a base name (every detectron2 model is ``model_final_*.pkl``), so
    the file sits in a folder keyed by a hash of its URL.
    """
    key = hashlib.sha256(weights.url.encode("utf-8")).hexdigest()[:16]
    return cache_dir / key / weights.file_name


def fetch_weights(
    weights: Weights, cache_dir: str | Path | None = None, *, progress: bool = True
) -> Path:
    """Download ``weights`` into the cache (once) and return the local path.

    The file is checked against ``weights.sha256``; a mismatch raises
    :class:`~rem_core.errors.RemError` and leaves no file behind. Without a published sha256,
    rem_core.download records the first download's hash and enforces it later. ``cache_dir``
    defaults to the rem cache folder for weights (``rem_core.download.cache_dir("weights")``).
    """
    from rem_core import download as downloads

    root = Path(cache_dir) if cache_dir is not None else Path(downloads.cache_dir("weights"))
    dest = default_cache_path(weights, root)
    return Path(downloads.download(weights.url, dest, weights.sha256, progress=progress))
