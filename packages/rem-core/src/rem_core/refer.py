"""Referring-expression datasets: the refer toolkit's pickles and rem's plain JSON form.

RefCOCO, RefCOCO+ and RefCOCOg ship in the layout of the ``refer`` toolkit: a folder holding
``refs(unc).p`` (or ``refs(umd).p`` / ``refs(google).p``, one per split scheme) and
``instances.json`` (COCO images, annotations and categories). The refs file is a pickled list
of dicts, mostly written by Python 2. Unpickling runs code named by the file, so
:func:`read_refer` uses an unpickler that refuses every global: a refs file only needs lists,
dicts, strings and numbers, and anything else is refused before it is imported.

Each ref becomes a :class:`~rem_core.schemas.ReferringSample` holding its image's size and file
name, its annotation's mask and box, and its sentences (``raw`` kept beside the cleaned
``sent``: LAVT tokenises the raw text). :func:`write_referring_json` saves samples as a JSON
document ``{"info": ..., "samples": [...]}`` that :func:`read_referring` reads back, so users
can make referring datasets without pickles.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rem_core.errors import RemError
from rem_core.schemas.referring import ReferringSample

SPLITS = ("train", "val", "test", "testA", "testB")
_PICKLE_SUFFIXES = (".p", ".pkl", ".pickle")


class _Refused(pickle.UnpicklingError):
    """The file asked for something a plain refs file never needs."""


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Builds only pickle's own containers and scalars; every global or persistent id fails."""

    def find_class(self, module: str, name: str) -> Any:
        raise _Refused(
            f"refusing to unpickle global {module}.{name}: a refs file holds only lists, "
            "dicts, strings and numbers"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("refusing a persistent id: not a plain refs file")


def _text(value: bytes) -> str:
    # Python 2 ``str`` arrives as bytes; the refer files hold UTF-8 (mostly ASCII) text.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _decode_bytes(node: Any) -> Any:
    """Python 2 byte strings (keys and values) to str, recursively; other values unchanged."""
    if isinstance(node, bytes):
        return _text(node)
    if isinstance(node, dict):
        return {_decode_bytes(k): _decode_bytes(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_decode_bytes(v) for v in node]
    return node


def load_refs_pickle(path: str | Path) -> list[dict[str, Any]]:
    """The list of ref dicts of a refer ``refs(*).p`` file, read without running any code."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = _NoGlobalsUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise RemError("no such file", path=path) from None
    except _Refused as exc:
        raise RemError(str(exc), path=path) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
    ) as exc:
        raise RemError(
            f"not a readable refs pickle ({type(exc).__name__}: {exc})", path=path
        ) from None
    data = _decode_bytes(data)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise RemError(f"expected a list of ref dicts, got {type(data).__name__}", path=path)
    return data


def _index(records: Any, section: str, path: Path) -> dict[int, dict]:
    if not isinstance(records, list):
        raise RemError(f"'{section}' must be a list", path=path, where=section)
    out: dict[int, dict] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), int):
            raise RemError("record without an integer 'id'", path=path, where=f"{section}[{i}]")
        out[rec["id"]] = rec
    return out


def _sentences(ref: Mapping[str, Any], where: str, path: Path) -> list[dict[str, Any]]:
    raw_sents = ref.get("sentences")
    if not isinstance(raw_sents, list) or not raw_sents:
        raise RemError("a ref needs a non-empty 'sentences' list", path=path, where=where)
    out = []
    for j, s in enumerate(raw_sents):
        if not isinstance(s, Mapping):
            raise RemError("a sentence must be a dict", path=path, where=f"{where}.sentences[{j}]")
        text = s.get("sent", s.get("raw"))
        if not isinstance(text, str):
            raise RemError(
                "a sentence needs 'sent' or 'raw' text", path=path, where=f"{where}.sentences[{j}]"
            )
        sentence = {"sent": text, **{k: v for k, v in s.items() if k != "sent"}}
        out.append(sentence)
    return out


def read_refer(
    refs: str | Path,
    instances: str | Path | None = None,
    *,
    split: str | Sequence[str] | None = None,
) -> list[ReferringSample]:
    """Samples of a refer dataset, one per ref, in the file's order.

    ``refs`` is a ``refs(unc|umd|google).p`` file; ``instances`` defaults to the
    ``instances.json`` beside it. ``split`` keeps only refs of that split (or of any of a list
    of splits): train, val, test, testA, testB. The sample's ``file_name`` is the image's name
    in ``instances.json`` (``COCO_train2014_<id>.jpg``); ``segmentation`` and ``bbox`` (XYWH)
    are the referred annotation's.
    """
    from rem_core.io import read_json

    refs_path = Path(refs)
    inst_path = Path(instances) if instances is not None else refs_path.parent / "instances.json"
    wanted = _wanted_splits(split)
    records = load_refs_pickle(refs_path)
    if not inst_path.is_file():
        raise RemError(
            "no such file (the refer layout keeps instances.json beside the refs file)",
            path=inst_path,
        )
    coco = read_json(inst_path)
    if not isinstance(coco, dict):
        raise RemError("expected a COCO object with images and annotations", path=inst_path)
    images = _index(coco.get("images"), "images", inst_path)
    anns = _index(coco.get("annotations"), "annotations", inst_path)
    samples: list[ReferringSample] = []
    for i, ref in enumerate(records):
        where = f"refs[{i}]"
        if wanted is not None and ref.get("split") not in wanted:
            continue
        ann = anns.get(ref.get("ann_id"))  # type: ignore[arg-type]
        if ann is None:
            raise RemError(
                f"ann_id {ref.get('ann_id')!r} is not in {inst_path.name}",
                path=refs_path,
                where=where,
            )
        image = images.get(ref.get("image_id"))  # type: ignore[arg-type]
        if image is None:
            raise RemError(
                f"image_id {ref.get('image_id')!r} is not in {inst_path.name}",
                path=refs_path,
                where=where,
            )
        record = {
            "ref_id": ref.get("ref_id"),
            "image_id": ref.get("image_id"),
            "file_name": image.get("file_name"),
            "height": image.get("height"),
            "width": image.get("width"),
            "split": ref.get("split"),
            "category_id": ref.get("category_id", ann.get("category_id")),
            "ann_id": ref.get("ann_id"),
            "bbox": ann.get("bbox"),
            "segmentation": ann.get("segmentation"),
            "sentences": _sentences(ref, where, refs_path),
        }
        samples.append(_validate(record, refs_path, where))
    return samples


def _wanted_splits(split: str | Sequence[str] | None) -> set[str] | None:
    if split is None:
        return None
    wanted = {split} if isinstance(split, str) else set(split)
    unknown = sorted(wanted - set(SPLITS))
    if unknown:
        raise RemError(f"unknown split {', '.join(unknown)}; splits are {', '.join(SPLITS)}")
    return wanted


def _validate(record: Mapping[str, Any], path: Path, where: str) -> ReferringSample:
    try:
        return ReferringSample.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        field = f"{where}.{loc}" if loc else where
        raise RemError(err["msg"], path=path, where=field) from None


def read_referring_json(
    path: str | Path, *, split: str | Sequence[str] | None = None
) -> list[ReferringSample]:
    """Samples of a rem referring JSON file: ``{"samples": [...]}`` or a bare list of samples."""
    from rem_core.io import read_json

    path = Path(path)
    wanted = _wanted_splits(split)
    data = read_json(path)
    records = data.get("samples") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise RemError("expected a list of referring samples or {'samples': [...]}", path=path)
    samples = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise RemError("a sample must be an object", path=path, where=f"samples[{i}]")
        if wanted is not None and record.get("split") not in wanted:
            continue
        samples.append(_validate(record, path, f"samples[{i}]"))
    return samples


def read_referring(
    path: str | Path,
    *,
    split: str | Sequence[str] | None = None,
    instances: str | Path | None = None,
) -> list[ReferringSample]:
    """Referring samples from a refs pickle (``.p``) or a rem referring JSON file."""
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return read_refer(path, instances, split=split)
    if instances is not None:
        raise RemError("instances applies only to refer pickles (refs(*).p)", path=path)
    return read_referring_json(path, split=split)


def write_referring_json(
    path: str | Path, samples: Iterable[ReferringSample], *, info: Mapping[str, Any] | None = None
) -> Path:
    """Write samples as ``{"info": ..., "samples": [...]}`` (atomic; ``None`` fields left out)."""
    from rem_core.io import save_json

    path = Path(path)
    records = [s.model_dump(mode="json", exclude_none=True) for s in samples]
    save_json(path, {"info": dict(info or {}), "samples": records})
    return path


__all__ = [
    "SPLITS",
    "load_refs_pickle",
    "read_refer",
    "read_referring",
    "read_referring_json",
    "write_referring_json",
]
