"""Known datasets: where their files live under a datasets root, and where to fetch them.

Every dataset keeps the layout its usual tools expect (detectron2 for COCO and LVIS, the refer
toolkit for RefCOCO, VOCdevkit + benchmark_RELEASE for VOC/SBD), so a folder prepared for those
tools works here and the other way round. The root is ``--root``, else ``$REM_DATASETS``, else
``./datasets``. Only annotation archives are downloaded; images are placed by the user (VOC and
SBD ship theirs inside the annotation archives).

Checksums are data (:data:`CHECKSUMS`): a published sha256 is enforced; where none is known the
first download's hash is recorded and enforced afterwards (see :mod:`rem_core.download`).
"""

from __future__ import annotations

import difflib
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from rem_core.atomic import atomic_write_text
from rem_core.download import DownloadError, cache_dir, download, extract_archive
from rem_core.errors import RemError

ROOT_ENV = "REM_DATASETS"
MIRROR_ENV = "REM_DATASETS_MIRROR"
DEFAULT_ROOT = "datasets"


@dataclass(frozen=True)
class Checksum:
    """Published digests and size of one downloadable file; ``None`` where none is published."""

    sha256: str | None
    md5: str | None = None
    size: int | None = None


# Keyed by file name (the last URL component), so a mirror serving the same file is held to the
# same digest. Provenance of each value:
#   COCO, LVIS: tensorflow/datasets url_checksums/coco2017.txt and object_detection/lvis/checksums.tsv
#   VOC: sha256 + size from tensorflow/datasets url_checksums/voc.txt (a byte-identical copy of
#        the Oxford tar), md5 from torchvision.datasets.VOCSegmentation
#   SBD: md5 from torchvision.datasets.SBDataset, size from its download log
CHECKSUMS: dict[str, Checksum] = {
    "annotations_trainval2017.zip": Checksum(
        sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268", size=252907541
    ),
    "lvis_v1_train.json.zip": Checksum(
        sha256="334a4caa374030a7817cf050364525e910f7960f9b6968cef47cffbf3893f8ba", size=350264821
    ),
    "lvis_v1_val.json.zip": Checksum(
        sha256="5cae9a3c79aadb667550c2b5dcf7f4d86e059a41ec91ef690225b667e28e9ba5", size=64026968
    ),
    "instances_trainrem.json.zip": Checksum(sha256=None),
    "instances_valrem.json.zip": Checksum(sha256=None),
    "refcoco.zip": Checksum(sha256=None),
    "refcoco+.zip": Checksum(sha256=None),
    "refcocog.zip": Checksum(sha256=None),
    "VOCtrainval_11-May-2012.tar": Checksum(
        sha256="e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb",
        md5="6cd6e144f989b92b3379bac3b3de84fd",
        size=1999639040,
    ),
    "benchmark.tgz": Checksum(sha256=None, md5="82b4d87ceb2ed10f6038a1cba92111cb", size=1419539633),
}


@dataclass(frozen=True)
class Source:
    """One archive: fetched into the download cache, then unpacked under ``root/extract_to``.

    ``urls`` are tried in order on network errors (the first is the official one). ``provides``
    lists the root-relative paths the archive yields; a source is skipped when all are present.
    """

    urls: tuple[str, ...]
    extract_to: str
    provides: tuple[str, ...]
    includes_images: bool = False

    @property
    def filename(self) -> str:
        return urllib.parse.unquote(self.urls[0].rsplit("/", 1)[-1])

    @property
    def checksum(self) -> Checksum:
        return CHECKSUMS.get(self.filename, Checksum(sha256=None))


@dataclass(frozen=True)
class Dataset:
    """A known dataset: root-relative annotation paths by role, image folder and sources.

    ``annotations`` maps a role (``instances``, ``refs``...) to a file or folder; the first entry
    is the main one. ``derive`` writes the ``derived`` paths from downloaded ones.
    """

    name: str
    description: str
    annotations: dict[str, str]
    image_dir: str
    sources: tuple[Source, ...]
    images_hint: str
    derived: tuple[str, ...] = ()
    derive: Callable[[Path], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DatasetPaths:
    """Absolute paths of one dataset under a root; ``annotation`` is the main annotation file."""

    name: str
    root: Path
    annotations: dict[str, Path]
    image_dir: Path

    @property
    def annotation(self) -> Path:
        return next(iter(self.annotations.values()))

    def missing(self) -> list[Path]:
        """Annotation paths not present (a folder counts when it holds something)."""
        return [p for p in self.annotations.values() if not is_present(p)]


def is_present(path: Path) -> bool:
    """A file exists, or a folder exists and is not empty."""
    if path.is_dir():
        return any(path.iterdir())
    return path.is_file()


# --- the registry -----------------------------------------------------------------------------

_COCO_ANNOTATIONS = Source(
    urls=("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",),
    extract_to="coco",
    provides=(
        "coco/annotations/instances_train2017.json",
        "coco/annotations/instances_val2017.json",
    ),
)
_COCO_IMAGES = "http://images.cocodataset.org/zips/{split}2017.zip"
_HF_COCO_REM = "https://huggingface.co/datasets/kdexd/coco-rem/resolve/main/{file}"
_LVIS = "https://dl.fbaipublicfiles.com/LVIS/{file}"
_LVIS_S3 = "https://s3-us-west-2.amazonaws.com/dl.fbaipublicfiles.com/LVIS/{file}"
_REFER = "https://bvisionweb1.cs.unc.edu/licheng/referit/data/{file}"
# Wayback Machine snapshots of the refer files, for when the UNC server is down (it often is).
_REFER_ARCHIVED = {
    "refcoco.zip": "20220413011718",
    "refcoco+.zip": "20220413011656",
    "refcocog.zip": "20220413012904",
}
_VOC_DIR = "voc/VOCdevkit/VOC2012"
_SBD_DIR = "voc/benchmark_RELEASE/dataset"


def _coco(split: str) -> Dataset:
    return Dataset(
        name=f"coco_2017_{split}",
        description=f"COCO 2017 {split} instances (detectron2 layout)",
        annotations={"instances": f"coco/annotations/instances_{split}2017.json"},
        image_dir=f"coco/{split}2017",
        sources=(_COCO_ANNOTATIONS,),
        images_hint=_COCO_IMAGES.format(split=split),
    )


def _coco_rem(split: str) -> Dataset:
    file = f"instances_{split}rem.json"
    return Dataset(
        name=f"coco_rem_{split}",
        description=f"COCO-ReM {split}: COCO 2017 {split} images with refined masks",
        annotations={"instances": f"coco/annotations/{file}"},
        image_dir=f"coco/{split}2017",
        sources=(
            Source(
                urls=(_HF_COCO_REM.format(file=f"{file}.zip"),),
                extract_to="coco/annotations",
                provides=(f"coco/annotations/{file}",),
            ),
        ),
        images_hint=_COCO_IMAGES.format(split=split),
    )


def _lvis(split: str) -> Dataset:
    file = f"lvis_v1_{split}.json"
    return Dataset(
        name=f"lvis_v1_{split}",
        description=f"LVIS v1 {split} on COCO 2017 images (file names via coco_url)",
        annotations={"instances": f"lvis/{file}"},
        # LVIS v1 draws images from both COCO train2017 and val2017: the root holds both.
        image_dir="coco",
        sources=(
            Source(
                urls=(_LVIS.format(file=f"{file}.zip"), _LVIS_S3.format(file=f"{file}.zip")),
                extract_to="lvis",
                provides=(f"lvis/{file}",),
            ),
        ),
        images_hint=f"{_COCO_IMAGES.format(split='train')} and {_COCO_IMAGES.format(split='val')}"
        " into coco/train2017 and coco/val2017",
    )


def _refer(name: str, folder: str, split_by: str, description: str) -> Dataset:
    file = f"{folder}.zip"
    return Dataset(
        name=name,
        description=description,
        annotations={
            "refs": f"{folder}/refs({split_by}).p",
            "instances": f"{folder}/instances.json",
        },
        image_dir="coco/train2014",
        sources=(
            Source(
                urls=(
                    _REFER.format(file=file),
                    f"https://web.archive.org/web/{_REFER_ARCHIVED[file]}/"
                    + _REFER.format(file=file),
                ),
                extract_to=".",
                provides=(f"{folder}/refs({split_by}).p", f"{folder}/instances.json"),
            ),
        ),
        images_hint="http://images.cocodataset.org/zips/train2014.zip",
    )


def write_train_aug(root: Path) -> None:
    """Write ``voc/train_aug.txt``: SBD train+val and VOC2012 seg train, minus VOC2012 seg val.

    This is the usual 10,582-image "train_aug" split: every image with SBD or VOC masks that is
    not in the VOC2012 segmentation val set, sorted, one id per line.
    """

    def ids(rel: str) -> set[str]:
        path = root / rel
        if not path.is_file():
            raise RemError("missing image list needed for train_aug.txt", path=path)
        return {line.strip() for line in path.read_text().splitlines() if line.strip()}

    voc_sets = f"{_VOC_DIR}/ImageSets/Segmentation"
    train_aug = (
        ids(f"{_SBD_DIR}/train.txt") | ids(f"{_SBD_DIR}/val.txt") | ids(f"{voc_sets}/train.txt")
    ) - ids(f"{voc_sets}/val.txt")
    atomic_write_text(root / "voc/train_aug.txt", "".join(f"{i}\n" for i in sorted(train_aug)))


_VOC_SBD = Dataset(
    name="voc2012_sbd",
    description="PASCAL VOC 2012 + SBD instance masks, train_aug split (VOCdevkit layout)",
    annotations={
        "train_aug": "voc/train_aug.txt",
        "voc_objects": f"{_VOC_DIR}/SegmentationObject",
        "voc_classes": f"{_VOC_DIR}/SegmentationClass",
        "voc_train": f"{_VOC_DIR}/ImageSets/Segmentation/train.txt",
        "voc_val": f"{_VOC_DIR}/ImageSets/Segmentation/val.txt",
        "sbd_inst": f"{_SBD_DIR}/inst",
        "sbd_cls": f"{_SBD_DIR}/cls",
        "sbd_train": f"{_SBD_DIR}/train.txt",
        "sbd_val": f"{_SBD_DIR}/val.txt",
    },
    image_dir=f"{_VOC_DIR}/JPEGImages",
    sources=(
        Source(
            urls=(
                "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            ),
            extract_to="voc",
            provides=(
                f"{_VOC_DIR}/SegmentationObject",
                f"{_VOC_DIR}/SegmentationClass",
                f"{_VOC_DIR}/ImageSets/Segmentation/train.txt",
                f"{_VOC_DIR}/ImageSets/Segmentation/val.txt",
            ),
            includes_images=True,
        ),
        Source(
            urls=(
                "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
                "semantic_contours/benchmark.tgz",
            ),
            extract_to="voc",
            provides=(
                f"{_SBD_DIR}/inst",
                f"{_SBD_DIR}/cls",
                f"{_SBD_DIR}/train.txt",
                f"{_SBD_DIR}/val.txt",
            ),
            includes_images=True,
        ),
    ),
    images_hint="JPEGImages come inside VOCtrainval_11-May-2012.tar",
    derived=("voc/train_aug.txt",),
    derive=write_train_aug,
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        _coco("train"),
        _coco("val"),
        _coco_rem("train"),
        _coco_rem("val"),
        _lvis("train"),
        _lvis("val"),
        _refer("refcoco_unc", "refcoco", "unc", "RefCOCO, UNC splits (refer layout)"),
        _refer("refcocoplus_unc", "refcoco+", "unc", "RefCOCO+, UNC splits (refer layout)"),
        _refer("refcocog_umd", "refcocog", "umd", "RefCOCOg, UMD splits (refer layout)"),
        _VOC_SBD,
    )
}


# --- lookup -----------------------------------------------------------------------------------


def names() -> list[str]:
    return list(DATASETS)


def get(name: str) -> Dataset:
    """The registry entry for ``name``; an unknown name is a RemError suggesting close ones."""
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise RemError(f"unknown dataset {name!r}{hint} (known: {', '.join(DATASETS)})") from None


def datasets_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$REM_DATASETS``, else ``./datasets``; made absolute, not created."""
    chosen = root if root is not None else os.environ.get(ROOT_ENV) or DEFAULT_ROOT
    return Path(chosen).expanduser().absolute()


def resolve(name: str, root: str | Path | None = None, *, check: bool = False) -> DatasetPaths:
    """Absolute paths of dataset ``name`` under the datasets root.

    With ``check`` a missing annotation path is a RemError telling how to download it.
    """
    dataset = get(name)
    base = datasets_root(root)
    paths = DatasetPaths(
        name=name,
        root=base,
        annotations={role: base / rel for role, rel in dataset.annotations.items()},
        image_dir=base / dataset.image_dir,
    )
    if check and (missing := paths.missing()):
        raise RemError(
            f"dataset {name} is missing {missing[0].relative_to(base)}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + f"; run `rem datasets download {name} --root {base}`",
            path=base,
        )
    return paths


def annotation_path(value: str | Path, root: str | Path | None = None) -> Path:
    """Let a command take a dataset name where it takes an annotation file.

    An existing path wins; otherwise a known dataset name gives its main annotation file (which
    must be present); anything else is returned as a path for the caller to report.
    """
    path = Path(value)
    if path.exists() or str(value) not in DATASETS:
        return path
    return resolve(str(value), root, check=True).annotation


# --- downloading ------------------------------------------------------------------------------


def source_urls(source: Source) -> tuple[str, ...]:
    """The URLs to try; ``$REM_DATASETS_MIRROR`` replaces them all with ``MIRROR/<file name>``."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return (f"{mirror.rstrip('/')}/{urllib.parse.quote(source.filename)}",)
    return source.urls


def fetch_source(
    source: Source, *, force: bool = False, progress: bool = True, console: Console | None = None
) -> Path:
    """Download ``source`` into the download cache (verified), trying mirrors in turn."""
    console = console or Console(stderr=True)
    dest = cache_dir("downloads") / source.filename
    checksum = source.checksum
    urls = source_urls(source)
    for i, url in enumerate(urls):
        try:
            return download(
                url,
                dest,
                checksum.sha256,
                md5=checksum.md5,
                expected_size=checksum.size,
                force=force,
                progress=progress,
                console=console,
            )
        except DownloadError as exc:
            if i + 1 == len(urls):
                raise
            console.print(f"{exc}; trying {urls[i + 1]}", soft_wrap=True, markup=False)
    raise AssertionError("unreachable: a source has at least one URL")


def download_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> DatasetPaths:
    """Fetch and unpack the annotation archives of ``name`` that are not in place yet.

    ``force`` downloads and unpacks again even when the files are present. Archives stay in the
    download cache (see :func:`rem_core.download.cache_dir`), so unpacking again is cheap.
    """
    console = console or Console(stderr=True)
    dataset = get(name)
    base = datasets_root(root)
    for source in dataset.sources:
        targets = [base / rel for rel in source.provides]
        if not force and all(is_present(t) for t in targets):
            console.print(
                f"{name}: {source.filename} already unpacked under {base}",
                soft_wrap=True,
                markup=False,
            )
            continue
        archive = fetch_source(source, force=force, progress=progress, console=console)
        console.print(
            f"{name}: unpacking {archive.name} into {base / source.extract_to}",
            soft_wrap=True,
            markup=False,
        )
        extract_archive(archive, base / source.extract_to)
        absent = [t for t in targets if not is_present(t)]
        if absent:
            raise RemError(
                f"archive did not provide {absent[0].relative_to(base)} "
                f"(from {source.urls[0]}); its layout is not the expected one",
                path=archive,
            )
    if dataset.derive is not None and (
        force or not all(is_present(base / rel) for rel in dataset.derived)
    ):
        dataset.derive(base)
    return resolve(name, base, check=True)
