"""Read and write COCO, LVIS and results JSON quickly, keeping records as plain dicts.

A COCO-train file holds about 860k annotations and tens of millions of polygon coordinates.
Building a pydantic object per record would cost several times the time and memory of the parse
itself, so records stay the plain dicts and lists the decoder makes; indexes are built on first
use and refer to those same dicts (no copies). ``CocoFile.to_model()`` gives the validated
pydantic form when wanted.

Reading uses msgspec, which builds Python objects straight from the input. (orjson first builds
a whole document tree beside them, which made loading a COCO-train-size file peak about 45%
higher than pycocotools.) Large files are memory-mapped and decoded record by record (see
``_decode_mapped``). Writing uses orjson. When decoding fails, the standard library parser is run
to say where: line and column, or the JSON path of a NaN / Infinity.

Round trip: loading and saving a file neither adds nor drops fields. A missing ``iscrowd`` (LVIS)
stays missing in the dicts; read it through :func:`iscrowd`, which treats it as 0.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import mmap
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import orjson

from rem_core.atomic import atomic_write_bytes
from rem_core.errors import RemError

if TYPE_CHECKING:
    from rem_core.schemas import CocoDataset

Kind = Literal["coco", "lvis", "results"]

_BOM = b"\xef\xbb\xbf"
# How many non-finite numbers get an exact line and column (each one costs a re-parse).
_MAX_LOCATED = 20


# --------------------------------------------------------------------------------------------
# JSON reading with precise errors


@dataclass(frozen=True)
class JsonProblem:
    """Why a JSON document could not be read: ``where`` is a JSON path or ``line L, column C``."""

    where: str
    message: str


class _NonFinite:
    """Stands in for a NaN / Infinity / overflowing number while locating them."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _json_paths(node: Any, prefix: str = "") -> Iterator[tuple[str, _NonFinite]]:
    """Yield (JSON path, marker) for every non-finite marker, in document order."""
    stack: list[tuple[str, Any]] = [(prefix, node)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _NonFinite):
            yield where, value
        elif isinstance(value, dict):
            items = [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{where}[{i}]", v) for i, v in enumerate(value)]))


_NUMBER_AT = re.compile(r"-?(?:NaN|Infinity)|-?[0-9][0-9.eE+-]*")


def _locate_non_finite(text: str, limit: int) -> list[tuple[int, int, str]]:
    """Line, column and text of the first ``limit`` non-finite numbers, in document order.

    orjson stops at the first one and says where; blanking that token with same-length valid
    JSON (``0`` and spaces) and parsing again finds the next without shifting any position.
    """
    found: list[tuple[int, int, str]] = []
    while len(found) < limit:
        try:
            orjson.loads(text)
            break
        except orjson.JSONDecodeError as exc:
            pos = exc.pos
            # orjson points at "I" of "-Infinity"; step back onto the sign.
            if pos > 0 and text[pos - 1] == "-" and text.startswith("Infinity", pos):
                pos -= 1
            match = _NUMBER_AT.match(text, pos)
            if match is None:
                break
            found.append((*_line_col(text, pos), match.group()))
            width = match.end() - pos
            text = text[:pos] + "0" + " " * (width - 1) + text[match.end() :]
    return found


# Above this size the standard library parse (several times the file in memory) is skipped.
_STDLIB_MAX_BYTES = 64 << 20


def _diagnose_large(text: str) -> list[JsonProblem]:
    """Line and column only (no JSON paths), to keep a huge broken file's diagnosis light."""
    located = _locate_non_finite(text, _MAX_LOCATED)
    if located:
        return [
            JsonProblem(
                f"line {line}, column {col}",
                f"non-finite number {token} is not valid JSON; numbers must be finite",
            )
            for line, col, token in located
        ]
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return [JsonProblem(f"line {exc.lineno}, column {exc.colno}", f"malformed JSON: {exc.msg}")]
    return []


def diagnose_json(raw: bytes) -> list[JsonProblem]:
    """Explain why ``raw`` is not valid JSON: malformed syntax or non-finite numbers.

    Only called after the fast parser failed. The standard library parser gives the line and
    column of a syntax error; with hooks it also accepts NaN, Infinity and numbers too large for
    a double, so each of those can be reported with its JSON path (``annotations[3].bbox[2]``).
    """
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        return [JsonProblem(f"line {line}, column {col}", f"invalid UTF-8 byte 0x{bad}")]
    if not text.strip():
        return [JsonProblem("line 1, column 1", "the file is empty; expected a JSON document")]
    if len(raw) > _STDLIB_MAX_BYTES:
        return _diagnose_large(text)

    def parse_float(token: str) -> float | _NonFinite:
        value = float(token)
        return value if math.isfinite(value) else _NonFinite(token)

    try:
        data = json.loads(text, parse_constant=_NonFinite, parse_float=parse_float)
    except json.JSONDecodeError as exc:
        return [JsonProblem(f"line {exc.lineno}, column {exc.colno}", f"malformed JSON: {exc.msg}")]
    except RecursionError:
        return [JsonProblem("line 1, column 1", "malformed JSON: nesting too deep")]

    markers = list(_json_paths(data))
    if not markers:
        # Legal for the standard library but not for orjson (e.g. a lone UTF-16 surrogate).
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return [
                JsonProblem(f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}")
            ]
        return []
    positions = _locate_non_finite(text, _MAX_LOCATED)
    problems = []
    for i, (where, marker) in enumerate(markers):
        at = f" (line {positions[i][0]}, column {positions[i][1]})" if i < len(positions) else ""
        problems.append(
            JsonProblem(
                where or "(root)",
                f"non-finite number {marker.token} is not valid JSON{at}; numbers must be finite",
            )
        )
    return problems


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector while building millions of containers.

    None of them can be garbage yet, but each collection triggered by the allocations walks
    every tracked object (a COCO-train file has millions); pausing it makes loading and indexing
    several times faster. The previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _problems_error(problems: list[JsonProblem], path: str | Path | None) -> RemError:
    first = problems[0]
    more = f" (+{len(problems) - 1} more; `rem validate` lists them)" if len(problems) > 1 else ""
    return RemError(first.message + more, path=path, where=first.where)


_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, ValueError, UnicodeDecodeError)


def _explain(raw: bytes, fallback: str) -> list[JsonProblem]:
    return diagnose_json(raw) or [JsonProblem("(document)", f"invalid JSON: {fallback}")]


def _strip_bom(view: memoryview) -> memoryview:
    return view[3:] if view[:3] == _BOM else view


def parse_json(raw: bytes | memoryview, path: str | Path | None = None) -> Any:
    """Parse JSON bytes; on failure raise :class:`RemError` saying where and why."""
    view = _strip_bom(memoryview(raw))
    try:
        return _DECODER.decode(view)
    except _DECODE_ERRORS as exc:
        raise _problems_error(_explain(bytes(view), str(exc)), path) from None


_DECODER = msgspec.json.Decoder()
_RAW_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])
# Files above this size are memory-mapped and decoded a record at a time (see _decode_mapped).
_MAP_MIN_BYTES = 32 << 20
# How much decoded input may stay resident before its pages are dropped.
_DROP_EVERY_BYTES = 64 << 20


class _PageDropper:
    """Drops the mapped file's pages from this process every so many decoded bytes.

    The pages stay in the OS page cache, so touching them again is a cheap minor fault; but
    they stop counting towards this process's resident memory, which is what lets a load peak
    below the size of the parsed objects plus the size of the file.
    """

    def __init__(self, mapped: mmap.mmap):
        self.mapped = mapped
        self.pending = 0
        self.enabled = hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED")

    def consumed(self, nbytes: int) -> None:
        self.pending += nbytes
        if self.enabled and self.pending >= _DROP_EVERY_BYTES:
            self.mapped.madvise(mmap.MADV_DONTNEED)
            self.pending = 0


def _decode_items(items: list[msgspec.Raw], dropper: _PageDropper) -> list:
    """Decode undecoded array elements in order, handing back consumed pages as it goes."""
    out: list = []
    decode = _DECODER.decode
    # Taken from the end of the reversed list, each chunk's Raw handles (about 60 bytes each)
    # are freed once decoded instead of living until the whole array is done.
    items.reverse()
    step = 8192
    while items:
        chunk = items[-step:]
        del items[-step:]
        chunk.reverse()
        out.extend(map(decode, chunk))
        dropper.consumed(sum(map(len, chunk)))
    return out


def _decode_mapped(view: memoryview, dropper: _PageDropper) -> Any:
    """Decode a large document section by section instead of in one call.

    One-shot decoding needs the whole file in memory next to every object made from it. Here
    the file is a read-only mapping; the top level is split into undecoded slices (msgspec.Raw
    refers into the mapping, it does not copy), then each array is decoded element by element
    while consumed pages are handed back.
    """
    start = 0
    while start < len(view) and view[start] in b" \t\r\n":
        start += 1
    first = view[start : start + 1].tobytes()
    if first == b"[":
        items = _RAW_ITEMS.decode(view)
        dropper.consumed(_DROP_EVERY_BYTES)  # the split touched every page
        return _decode_items(items, dropper)
    if first != b"{":
        return _DECODER.decode(view)
    fields = _RAW_FIELDS.decode(view)
    dropper.consumed(_DROP_EVERY_BYTES)
    out: dict[str, Any] = {}
    for key in list(fields):
        raw = fields.pop(key)
        if memoryview(raw)[:1].tobytes() == b"[":
            out[key] = _decode_items(_RAW_ITEMS.decode(raw), dropper)
        else:
            out[key] = _DECODER.decode(raw)
        del raw
    return out


def try_read_json(path: str | Path) -> tuple[Any, list[JsonProblem]]:
    """Read a JSON file: ``(data, [])``, or ``(None, problems)`` when it is not valid JSON.

    A file that cannot be read at all raises :class:`RemError`. Large files are memory-mapped
    and decoded record by record, so the peak memory is about the size of the resulting Python
    objects, not that plus the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _MAP_MIN_BYTES:
                raw = f.read()
                mapped = None
            else:
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise RemError("file not found", path=path) from None
    except IsADirectoryError:
        raise RemError("is a directory, expected a JSON file", path=path) from None
    except OSError as exc:
        raise RemError(f"cannot read: {exc.strerror}", path=path) from None

    if mapped is None:
        view = _strip_bom(memoryview(raw))
        try:
            return _DECODER.decode(view), []
        except _DECODE_ERRORS as exc:
            return None, _explain(bytes(view), str(exc))

    view = _strip_bom(memoryview(mapped))
    try:
        with gc_paused():
            data = _decode_mapped(view, _PageDropper(mapped))
        problems: list[JsonProblem] = []
    except _DECODE_ERRORS as exc:
        data, problems = None, _explain(view.tobytes(), str(exc))
    with contextlib.suppress(BufferError):
        view.release()
        mapped.close()
    return data, problems


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing file or bad JSON raises :class:`RemError` (line and column)."""
    data, problems = try_read_json(path)
    if problems:
        raise _problems_error(problems, path)
    return data


# --------------------------------------------------------------------------------------------
# JSON writing


def _default(obj: Any) -> Any:
    """Types orjson does not know: bytes RLE counts, pydantic models, paths, CocoFile."""
    if isinstance(obj, bytes):
        # pycocotools returns compressed RLE counts as bytes; JSON files store them as str.
        return obj.decode("ascii")
    if isinstance(obj, CocoFile):
        return obj.dataset
    if isinstance(obj, Path):
        return str(obj)
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):
        # exclude_unset: a default (iscrowd=0, file_name=None) is not written unless it was read.
        return model_dump(mode="json", exclude_unset=True, by_alias=True)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def dumps_json(obj: Any, *, indent: bool = False) -> bytes:
    """Serialize to JSON bytes: numpy arrays and scalars, bytes RLE counts and models allowed.

    Floats are written in their shortest round-tripping form, so load -> dump -> load gives the
    same values. orjson writes a NaN or infinity as ``null``; do not pass non-finite floats.
    """
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    if indent:
        option |= orjson.OPT_INDENT_2
    return orjson.dumps(obj, default=_default, option=option)


def save_json(path: str | Path, obj: Any, *, indent: bool = False) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a reader never sees half a file)."""
    atomic_write_bytes(path, dumps_json(obj, indent=indent))


# --------------------------------------------------------------------------------------------
# Record accessors


def iscrowd(ann: dict) -> int:
    """An annotation's crowd flag; LVIS leaves it out, which means 0."""
    return ann.get("iscrowd", 0) or 0


SegmentationKind = Literal["polygon", "rle", "uncompressed-rle", "none", "invalid"]


def segmentation_kind(segmentation: Any) -> SegmentationKind:
    """Classify a segmentation value by its form (without checking its contents)."""
    if segmentation is None:
        return "none"
    if isinstance(segmentation, list):
        return "polygon"
    if isinstance(segmentation, dict):
        counts = segmentation.get("counts")
        if isinstance(counts, str | bytes):
            return "rle"
        if isinstance(counts, list):
            return "uncompressed-rle"
    return "invalid"


def detect_kind(data: Any) -> Kind:
    """Guess a file's kind: a JSON list is results; LVIS marks images or categories its own way."""
    if isinstance(data, list):
        return "results"
    if not isinstance(data, dict):
        return "coco"
    for key, fields in (
        ("categories", ("frequency", "synonyms", "synset")),
        ("images", ("neg_category_ids", "not_exhaustive_category_ids")),
    ):
        records = data.get(key)
        first = records[0] if isinstance(records, list) and records else None
        if isinstance(first, dict) and any(f in first for f in fields):
            return "lvis"
    return "coco"


# --------------------------------------------------------------------------------------------
# COCO files


class _AnnsByImage(dict):
    """image id -> annotations; an image without annotations reads as an empty list.

    Unlike ``defaultdict`` a lookup does not insert the key, so ``len()`` and iteration keep
    listing only images that have annotations (as pycocotools' ``imgToAnns`` does after
    indexing).
    """

    def __missing__(self, key: Any) -> list[dict]:
        return []


def _section(dataset: dict, key: str, path: Path | None, required: bool) -> list:
    value = dataset.get(key)
    if value is None:
        if required:
            raise RemError(f"missing the {key!r} list", path=path, where=key)
        return []
    if not isinstance(value, list):
        raise RemError(f"expected a list, got {type(value).__name__}", path=path, where=key)
    return value


def _bad_record(records: list, section: str, field: str, path: Path | None) -> RemError:
    """The error for the first record that lacks a usable ``field`` (found after a failure)."""
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            return RemError(
                f"expected an object, got {type(record).__name__}",
                path=path,
                where=f"{section}[{i}]",
            )
        if field not in record:
            return RemError(f"missing {field!r}", path=path, where=f"{section}[{i}]")
        try:
            hash(record[field])
        except TypeError:
            return RemError(
                f"{field} must be an integer, got {type(record[field]).__name__}",
                path=path,
                where=f"{section}[{i}].{field}",
            )
    return RemError(f"cannot index {section} by {field}", path=path, where=section)


def _index_by_id(records: list, section: str, path: Path | None) -> dict[Any, dict]:
    try:
        with gc_paused():
            index = {r["id"]: r for r in records}
    except (KeyError, TypeError):
        raise _bad_record(records, section, "id", path) from None
    if len(index) != len(records):
        seen: set = set()
        for i, record in enumerate(records):
            if record["id"] in seen:
                raise RemError(
                    f"duplicate id {record['id']!r}", path=path, where=f"{section}[{i}].id"
                )
            seen.add(record["id"])
    return index


class CocoFile:
    """A COCO / LVIS / COCO-ReM instances file held as plain dicts, with lazy indexes.

    ``dataset`` is the parsed JSON object, unchanged. The indexes hold references to its
    records, so editing ``coco.anns[7]["segmentation"]`` edits ``coco.dataset`` too. Indexes are
    built on first access; a missing or duplicate ``id`` raises :class:`RemError` then.
    """

    def __init__(self, dataset: dict, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        if not isinstance(dataset, dict):
            raise RemError(
                f"expected a COCO object with images, annotations and categories, "
                f"got a JSON {type(dataset).__name__}",
                path=self.path,
            )
        self.dataset = dataset
        # Shape checks are cheap; catching a wrong top level here beats a KeyError later.
        self.images: list[dict] = _section(dataset, "images", self.path, required=True)
        self.annotations: list[dict] = _section(dataset, "annotations", self.path, required=False)
        self.categories: list[dict] = _section(dataset, "categories", self.path, required=False)

    def __repr__(self) -> str:
        return (
            f"CocoFile({str(self.path)!r}, images={len(self.images)}, "
            f"annotations={len(self.annotations)}, categories={len(self.categories)})"
        )

    @property
    def kind(self) -> Kind:
        """``"lvis"`` or ``"coco"`` (see :func:`detect_kind`)."""
        return detect_kind(self.dataset)

    @cached_property
    def imgs(self) -> dict[int, dict]:
        """image id -> image record."""
        return _index_by_id(self.images, "images", self.path)

    @cached_property
    def anns(self) -> dict[int, dict]:
        """annotation id -> annotation record."""
        return _index_by_id(self.annotations, "annotations", self.path)

    @cached_property
    def cats(self) -> dict[int, dict]:
        """category id -> category record."""
        return _index_by_id(self.categories, "categories", self.path)

    @cached_property
    def img_to_anns(self) -> dict[int, list[dict]]:
        """image id -> its annotations in file order; images without any read as ``[]``."""
        index: defaultdict[Any, list[dict]] = defaultdict(list)
        try:
            with gc_paused():
                for ann in self.annotations:
                    index[ann["image_id"]].append(ann)
        except (KeyError, TypeError):
            raise _bad_record(self.annotations, "annotations", "image_id", self.path) from None
        return _AnnsByImage(index)

    @cached_property
    def cat_to_imgs(self) -> dict[int, list[int]]:
        """category id -> ids of the images holding it, each once, in order of first use.

        (pycocotools' ``catToImgs`` repeats an image once per annotation.)
        """
        index: defaultdict[Any, dict[Any, None]] = defaultdict(dict)
        try:
            with gc_paused():
                for ann in self.annotations:
                    index[ann["category_id"]][ann["image_id"]] = None
        except (KeyError, TypeError):
            field = (
                "category_id"
                if any("category_id" not in a for a in self.annotations)
                else "image_id"
            )
            raise _bad_record(self.annotations, "annotations", field, self.path) from None
        return {cat: list(imgs) for cat, imgs in index.items()}

    def ann_ids(
        self,
        img_ids: Iterable[int] | None = None,
        cat_ids: Iterable[int] | None = None,
        crowd: bool | None = None,
    ) -> list[int]:
        """Ids of annotations on the given images and categories (None: any), in file order."""
        if img_ids is None:
            anns: Iterable[dict] = self.annotations
        else:
            by_image = self.img_to_anns
            anns = (a for i in img_ids for a in by_image[i])
        cats = None if cat_ids is None else set(cat_ids)
        return [
            a["id"]
            for a in anns
            if (cats is None or a["category_id"] in cats)
            and (crowd is None or bool(iscrowd(a)) == crowd)
        ]

    def to_model(self) -> CocoDataset:
        """The validated pydantic form (slow for COCO-train scale; raises pydantic errors)."""
        from rem_core.schemas import CocoDataset

        return CocoDataset.model_validate(self.dataset)

    def save(self, path: str | Path, *, indent: bool = False) -> None:
        """Write ``dataset`` atomically."""
        save_json(path, self.dataset, indent=indent)


def load_coco(path: str | Path) -> CocoFile:
    """Load a COCO / LVIS / COCO-ReM instances file (indexes are built on first use)."""
    return CocoFile(read_json(path), path)


def load_results(path: str | Path, coco: CocoFile | None = None) -> list[dict]:
    """Load a COCO results file: a JSON list of detections, returned as they are in the file.

    Each detection needs ``image_id``, ``category_id`` and ``score``. Given ``coco``, every
    ``image_id`` must be one of its images (pycocotools' ``loadRes`` asserts the same). Nothing is
    added: ids, areas and boxes that evaluation derives are left to the evaluator.
    """
    path = Path(path)
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        raise RemError(
            "this is a COCO instances file, not a results file (a JSON list of detections)",
            path=path,
        )
    if not isinstance(data, list):
        raise RemError(
            f"a results file is a JSON list of detections, got a JSON {type(data).__name__}",
            path=path,
        )
    for i, det in enumerate(data):
        if not isinstance(det, dict):
            raise RemError(
                f"expected an object, got {type(det).__name__}", path=path, where=f"[{i}]"
            )
        for field in ("image_id", "category_id", "score"):
            if field not in det:
                raise RemError(f"missing {field!r}", path=path, where=f"[{i}]")
    if coco is not None:
        known = coco.imgs
        for i, det in enumerate(data):
            if det["image_id"] not in known:
                gt = f" {coco.path}" if coco.path else ""
                raise RemError(
                    f"image {det['image_id']!r} is not in the ground-truth file{gt}",
                    path=path,
                    where=f"[{i}].image_id",
                )
    return data
