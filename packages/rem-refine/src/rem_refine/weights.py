"""The official SAM and MobileSAM checkpoints as data: URL, file name, sha256, architecture.

``rem weights download NAME`` fetches a file into the cache (``$REM_CACHE_DIR/weights``, default
``~/.cache/rem/weights``) through :func:`rem_core.download.download`: resumable, renamed into
place only after the sha256 matches. ``rem refine`` finds a cached file by architecture when no
``--checkpoint`` is given. Loading is always ``torch.load(weights_only=True)``.

The sha256 values are of the files at the listed URLs (segment-anything's files carry the first
six hex digits of their md5 in the name, e.g. ``4b8939``). An entry without a published sha256
is trusted on first use: the first download's hash is recorded and enforced afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rem_core.errors import RemError


@dataclass(frozen=True)
class WeightsInfo:
    """One downloadable checkpoint; ``arch`` names the builder in :mod:`rem_refine.sam.models`."""

    name: str
    arch: str
    url: str
    filename: str
    sha256: str | None
    description: str
    license: str


_SAM_BASE = "https://dl.fbaipublicfiles.com/segment_anything"

WEIGHTS: dict[str, WeightsInfo] = {
    w.name: w
    for w in (
        WeightsInfo(
            "sam_vit_h",
            "vit_h",
            f"{_SAM_BASE}/sam_vit_h_4b8939.pth",
            "sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            "Segment Anything ViT-H (the COCO-ReM reference model), 2.4 GiB",
            "Apache-2.0",
        ),
        WeightsInfo(
            "sam_vit_l",
            "vit_l",
            f"{_SAM_BASE}/sam_vit_l_0b3195.pth",
            "sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            "Segment Anything ViT-L, 1.2 GiB",
            "Apache-2.0",
        ),
        WeightsInfo(
            "sam_vit_b",
            "vit_b",
            f"{_SAM_BASE}/sam_vit_b_01ec64.pth",
            "sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            "Segment Anything ViT-B, 358 MiB",
            "Apache-2.0",
        ),
        WeightsInfo(
            "mobile_sam",
            "vit_t",
            "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
            "mobile_sam.pt",
            "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
            "MobileSAM: TinyViT-5M encoder distilled from ViT-H, SAM decoder, 39 MiB",
            "Apache-2.0",
        ),
    )
}

ARCH_WEIGHTS = {w.arch: w.name for w in WEIGHTS.values()}
"""Architecture -> the registry entry ``rem refine`` looks for when no checkpoint is given."""


def weights_info(name: str) -> WeightsInfo:
    if name not in WEIGHTS:
        raise RemError(f"unknown weights {name!r}; expected one of {sorted(WEIGHTS)}")
    return WEIGHTS[name]


def weights_dir() -> Path:
    """The weights cache folder (created)."""
    from rem_core.download import cache_dir

    return cache_dir("weights")


def cached_path(name: str) -> Path:
    """Where ``name`` lives in the cache (it may not be there yet)."""
    return weights_dir() / weights_info(name).filename


def download_weights(
    name: str,
    *,
    url: str | None = None,
    sha256: str | None = None,
    dest_dir: Path | None = None,
    force: bool = False,
    progress: bool = True,
    console=None,
) -> Path:
    """Fetch ``name`` (from ``url`` if given, e.g. a mirror) and verify it; returns the path.

    The expected hash is ``sha256`` if given, else the registry's; a mirror must serve the same
    bytes as the official URL.
    """
    from rem_core.download import download

    info = weights_info(name)
    dest = (dest_dir or weights_dir()) / info.filename
    return download(
        url or info.url,
        dest,
        (sha256 or info.sha256),
        force=force,
        progress=progress,
        console=console,
    )


def find_checkpoint(arch: str) -> Path | None:
    """A cached checkpoint for ``arch``, if one was downloaded."""
    name = ARCH_WEIGHTS.get(arch)
    if name is None:
        return None
    path = cached_path(name)
    return path if path.is_file() else None
