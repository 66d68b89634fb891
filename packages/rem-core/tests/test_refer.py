"""rem_core.refer: refer pickles (as Python 2 wrote them) and the plain JSON form."""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest
from click.testing import CliRunner

from rem_core.errors import RemError
from rem_core.refer import (
    load_refs_pickle,
    read_refer,
    read_referring,
    read_referring_json,
    write_referring_json,
)
from rem_core.schemas import ReferringSample


def py2_pickle(obj) -> bytes:
    """Protocol-2 bytes as Python 2's cPickle writes them: ``bytes`` become py2 ``str``
    (SHORT_BINSTRING), ``str`` become ``unicode`` (BINUNICODE). No globals are ever needed."""
    out = bytearray(b"\x80\x02")

    def emit(node) -> None:
        if isinstance(node, bytes):
            out.extend(b"U" + bytes([len(node)]) + node)
        elif isinstance(node, str):
            data = node.encode("utf-8")
            out.extend(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(node, bool):
            out.extend(b"\x88" if node else b"\x89")
        elif isinstance(node, int):
            out.extend(b"J" + struct.pack("<i", node))
        elif isinstance(node, float):
            out.extend(b"G" + struct.pack(">d", node))
        elif isinstance(node, list):
            out.extend(b"]")
            for item in node:
                emit(item)
                out.extend(b"a")
        elif isinstance(node, dict):
            out.extend(b"}")
            for key, value in node.items():
                emit(key)
                emit(value)
                out.extend(b"s")
        else:
            raise TypeError(type(node))

    emit(obj)
    out.extend(b".")
    return bytes(out)


def _ref(ref_id, ann_id, image_id, split, sentences):
    return {
        b"ref_id": ref_id,
        b"ann_id": ann_id,
        b"image_id": image_id,
        b"split": split,
        b"category_id": 1,
        b"file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg".encode(),
        b"sent_ids": [s[0] for s in sentences],
        b"sentences": [
            {
                b"sent_id": sid,
                b"raw": raw,
                b"sent": raw.lower().strip(".").encode() if isinstance(raw, str) else raw,
                b"tokens": [t.encode() for t in str(raw).lower().split()],
            }
            for sid, raw in sentences
        ],
    }


@pytest.fixture
def refer_dir(tmp_path):
    folder = tmp_path / "refcoco"
    folder.mkdir()
    refs = [
        _ref(10, 100, 1, b"train", [(0, "The man on the LEFT."), (1, b"man left")]),
        _ref(11, 101, 1, b"testA", [(2, "caf\u00e9 table")]),
        _ref(12, 102, 2, b"val", [(3, b"dog")]),
        _ref(13, 103, 2, b"testB", [(4, "blue car"), (5, "the car")]),
    ]
    (folder / "refs(unc).p").write_bytes(py2_pickle(refs))
    square = [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]
    instances = {
        "images": [
            {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 48, "width": 64},
            {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": 40, "width": 50},
        ],
        "annotations": [
            {
                "id": 100,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 10, 20, 20],
                "segmentation": square,
                "area": 400.0,
                "iscrowd": 0,
            },
            {
                "id": 101,
                "image_id": 1,
                "category_id": 2,
                "bbox": [0, 0, 5, 5],
                "segmentation": [[0, 0, 5, 0, 5, 5]],
                "area": 12.5,
                "iscrowd": 0,
            },
            {
                "id": 102,
                "image_id": 2,
                "category_id": 3,
                "bbox": [1, 1, 2, 2],
                "segmentation": {"size": [40, 50], "counts": [41, 2, 38, 2, 1917]},
                "area": 4.0,
                "iscrowd": 0,
            },
            {
                "id": 103,
                "image_id": 2,
                "category_id": 3,
                "bbox": [4, 4, 6, 6],
                "segmentation": [[4, 4, 10, 4, 10, 10, 4, 10]],
                "area": 36.0,
                "iscrowd": 0,
            },
        ],
        "categories": [{"id": i, "name": f"c{i}"} for i in (1, 2, 3)],
    }
    (folder / "instances.json").write_text(json.dumps(instances))
    return folder


def test_py2_pickle_reads_like_pickle_with_bytes_decoded(refer_dir):
    raw = (refer_dir / "refs(unc).p").read_bytes()
    # The standard library agrees on the structure (our writer is a valid protocol-2 pickle).
    expected = pickle.loads(raw, encoding="bytes")
    assert expected[0][b"ref_id"] == 10
    refs = load_refs_pickle(refer_dir / "refs(unc).p")
    assert len(refs) == 4
    assert refs[0]["split"] == "train" and refs[0]["sentences"][1]["raw"] == "man left"
    assert refs[1]["sentences"][0]["raw"] == "caf\u00e9 table"  # py2 unicode kept


def test_read_refer_builds_samples(refer_dir):
    samples = read_refer(refer_dir / "refs(unc).p")
    assert [s.ref_id for s in samples] == [10, 11, 12, 13]
    first = samples[0]
    assert isinstance(first, ReferringSample)
    assert (first.image_id, first.height, first.width) == (1, 48, 64)
    assert first.file_name == "COCO_train2014_000000000001.jpg"
    assert first.ann_id == 100 and first.bbox == (10.0, 10.0, 20.0, 20.0)
    assert first.segmentation == [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]
    assert [s.sent_id for s in first.sentences] == [0, 1]
    # ``sent`` is the cleaned text; ``raw`` (what LAVT tokenises) is kept beside it.
    assert first.sentences[0].sent == "the man on the left"
    assert first.sentences[0].model_extra["raw"] == "The man on the LEFT."
    assert first.sentences[0].tokens == ["the", "man", "on", "the", "left."]
    rle = samples[2].segmentation
    assert rle.size == (40, 50) and rle.counts == [41, 2, 38, 2, 1917]


def test_split_filter(refer_dir):
    refs = refer_dir / "refs(unc).p"
    assert [s.ref_id for s in read_refer(refs, split="testA")] == [11]
    assert [s.ref_id for s in read_refer(refs, split=["val", "testB"])] == [12, 13]
    with pytest.raises(RemError, match="unknown split testC"):
        read_refer(refs, split="testC")


def test_json_round_trip(refer_dir, tmp_path):
    samples = read_refer(refer_dir / "refs(unc).p")
    out = write_referring_json(tmp_path / "refcoco.json", samples, info={"source": "refs(unc).p"})
    doc = json.loads(out.read_text())
    assert doc["info"] == {"source": "refs(unc).p"} and len(doc["samples"]) == 4
    assert "tokens" in doc["samples"][0]["sentences"][0]
    back = read_referring(out)
    assert [s.model_dump() for s in back] == [s.model_dump() for s in samples]
    assert [s.ref_id for s in read_referring(out, split="val")] == [12]
    # A bare list of samples is accepted too.
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(doc["samples"][:1]))
    assert [s.ref_id for s in read_referring_json(bare)] == [10]


def test_read_referring_dispatches_on_suffix(refer_dir):
    samples = read_referring(refer_dir / "refs(unc).p", split="train")
    assert [s.ref_id for s in samples] == [10]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_globals_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "refs(unc).p"
    bad.write_bytes(pickle.dumps([{"ref_id": 1, "x": _Evil(marker)}], protocol=2))
    with pytest.raises(RemError, match=r"refusing to unpickle global (posix|nt)\.system") as info:
        load_refs_pickle(bad)
    assert info.value.path == str(bad)
    assert not marker.exists()


def test_refuses_persistent_ids_and_non_lists(tmp_path):
    class _Persistent(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    import io

    buffer = io.BytesIO()
    _Persistent(buffer, protocol=2).dump(["secret"])
    path = tmp_path / "p.p"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(RemError, match="persistent id"):
        load_refs_pickle(path)
    path.write_bytes(py2_pickle({b"a": 1}))
    with pytest.raises(RemError, match="expected a list of ref dicts, got dict"):
        load_refs_pickle(path)
    path.write_bytes(b"\x80\x02]q")  # truncated
    with pytest.raises(RemError, match="not a readable refs pickle"):
        load_refs_pickle(path)


def test_errors_name_the_record(refer_dir):
    refs = [_ref(20, 999, 1, b"train", [(0, b"x")])]
    (refer_dir / "refs(umd).p").write_bytes(py2_pickle(refs))
    with pytest.raises(RemError) as info:
        read_refer(refer_dir / "refs(umd).p")
    assert info.value.where == "refs[0]" and "ann_id 999 is not in instances.json" in str(
        info.value
    )
    refs = [_ref(20, 100, 1, b"train", [])]
    (refer_dir / "refs(umd).p").write_bytes(py2_pickle(refs))
    with pytest.raises(RemError, match="non-empty 'sentences'"):
        read_refer(refer_dir / "refs(umd).p")
    with pytest.raises(RemError, match="no such file"):
        read_refer(refer_dir / "refs(umd).p", refer_dir / "missing.json")


def test_cli_error_format(tmp_path):
    """A RemError from the reader reaches the CLI user as one line with exit code 2."""
    import click

    from rem_core.cli.main import cli

    bad = tmp_path / "refs(unc).p"
    bad.write_bytes(b"not a pickle")

    @click.command("refer-probe")
    def probe():
        load_refs_pickle(bad)

    cli.add_command(probe)
    try:
        result = CliRunner().invoke(cli, ["refer-probe"])
    finally:
        cli.commands.pop("refer-probe", None)
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {bad}: ")
