"""rem_core.io against pycocotools and the standard library json module."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import orjson
import pytest
from coco_samples import dataset, lvis_dataset, val30, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO

from rem_core import io as rio
from rem_core.errors import RemError
from rem_core.schemas import CocoDataset

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _pycocotools(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.fixture(params=["whole", "mapped"])
def read_mode(request, monkeypatch):
    """Run a test through both readers: one-shot decode and the mapped record-by-record one."""
    if request.param == "mapped":
        monkeypatch.setattr(rio, "_MAP_MIN_BYTES", 0)
        monkeypatch.setattr(rio, "_DROP_EVERY_BYTES", 512)  # exercise the page dropping too
    return request.param


# --- indexes against pycocotools -------------------------------------------------------------


def test_indexes_match_pycocotools_on_real_coco(read_mode):
    path = val30()
    ref = _pycocotools(path)
    coco = rio.load_coco(path)
    assert coco.dataset == ref.dataset
    assert coco.imgs == ref.imgs and list(coco.imgs) == list(ref.imgs)
    assert coco.anns == ref.anns and list(coco.anns) == list(ref.anns)
    assert coco.cats == ref.cats
    assert dict(coco.img_to_anns) == dict(ref.imgToAnns)
    # The index refers to the very records of the dataset (no copies).
    first = coco.dataset["annotations"][0]
    assert any(a is first for a in coco.img_to_anns[first["image_id"]])
    # pycocotools repeats an image per annotation; rem lists it once, in first-use order.
    assert coco.cat_to_imgs == {c: list(dict.fromkeys(v)) for c, v in ref.catToImgs.items()}


def test_ann_ids_match_pycocotools():
    path = val30()
    ref = _pycocotools(path)
    coco = rio.load_coco(path)
    img_ids = sorted(ref.getImgIds())[:7]
    cat_ids = [1, 62, 44]
    assert coco.ann_ids() == ref.getAnnIds()
    assert sorted(coco.ann_ids(img_ids=img_ids)) == sorted(ref.getAnnIds(imgIds=img_ids))
    assert sorted(coco.ann_ids(cat_ids=cat_ids)) == sorted(ref.getAnnIds(catIds=cat_ids))
    assert sorted(coco.ann_ids(img_ids, cat_ids, crowd=False)) == sorted(
        ref.getAnnIds(imgIds=img_ids, catIds=cat_ids, iscrowd=0)
    )
    assert sorted(coco.ann_ids(crowd=True)) == sorted(ref.getAnnIds(iscrowd=1))
    assert len(coco.ann_ids(crowd=True)) == 3


def test_image_without_annotations_reads_as_empty_without_inserting(tmp_path):
    coco = rio.load_coco(write(tmp_path / "d.json", dataset()))
    assert coco.img_to_anns[3] == []
    assert 3 not in coco.img_to_anns and sorted(coco.img_to_anns) == [1, 2]
    assert [a["id"] for a in coco.img_to_anns[2]] == [10, 12]


def test_to_model_gives_the_pydantic_dataset():
    coco = rio.load_coco(val30())
    model = coco.to_model()
    assert isinstance(model, CocoDataset)
    assert len(model.annotations) == 324 and model.annotations[0].id == coco.annotations[0]["id"]


# --- round trip ------------------------------------------------------------------------------


def test_save_reload_is_identical_to_the_stdlib_reading(tmp_path, read_mode):
    path = val30()
    original = json.loads(path.read_text())
    coco = rio.load_coco(path)
    out = tmp_path / "out.json"
    rio.save_json(out, coco.dataset)
    assert json.loads(out.read_text()) == original
    again = rio.load_coco(out)
    assert again.dataset == original
    rio.save_json(tmp_path / "again.json", again.dataset)
    assert (tmp_path / "again.json").read_bytes() == out.read_bytes()


def test_round_trip_keeps_extra_fields_and_adds_nothing(tmp_path, read_mode):
    data = lvis_dataset()
    data["annotations"][1]["segmentation"] = {"size": [4, 5], "counts": "52207"}
    path = write(tmp_path / "in.json", data)
    coco = rio.load_coco(path)
    rio.save_json(tmp_path / "out.json", coco.dataset)
    back = json.loads((tmp_path / "out.json").read_text())
    assert back == data
    assert back["extra_top_level"] == {"kept": True}
    assert back["annotations"][0]["source"] == "coco-rem"
    assert back["annotations"][0]["source_id"] == 77
    # LVIS: no iscrowd anywhere, and none was added; the accessor reads it as 0.
    assert all("iscrowd" not in a for a in back["annotations"])
    assert [rio.iscrowd(a) for a in coco.annotations] == [0, 0, 0]
    # Compressed stays a str, uncompressed stays a list, ints stay ints.
    assert back["annotations"][1]["segmentation"]["counts"] == "52207"
    assert dataset()["annotations"][1]["segmentation"]["counts"] == [5, 2, 2, 2, 9]
    assert isinstance(back["annotations"][2]["area"], float)
    assert isinstance(back["annotations"][2]["segmentation"][0][0], int)


def test_uncompressed_rle_is_preserved(tmp_path, read_mode):
    path = val30()
    coco = rio.load_coco(path)
    crowd = [a for a in coco.annotations if a["iscrowd"]]
    assert crowd and all(isinstance(a["segmentation"]["counts"], list) for a in crowd)
    rio.save_json(tmp_path / "out.json", coco.dataset)
    ref = _pycocotools(tmp_path / "out.json")
    for ann in crowd:
        assert ref.anns[ann["id"]]["segmentation"] == ann["segmentation"]


def test_save_json_writes_bytes_counts_as_str_and_numpy(tmp_path):
    from pycocotools import mask as mask_utils

    mask = np.zeros((6, 7), dtype=np.uint8, order="F")
    mask[2:5, 1:3] = 1
    rle = mask_utils.encode(mask)
    assert isinstance(rle["counts"], bytes)
    rio.save_json(
        tmp_path / "r.json",
        [{"segmentation": rle, "score": np.float32(0.5), "bbox": np.array([1.0, 2.0, 3.0, 4.0])}],
    )
    back = json.loads((tmp_path / "r.json").read_text())
    assert back[0]["segmentation"]["counts"] == rle["counts"].decode()
    assert back[0]["score"] == 0.5 and back[0]["bbox"] == [1.0, 2.0, 3.0, 4.0]
    decoded = mask_utils.decode(
        {
            "size": back[0]["segmentation"]["size"],
            "counts": back[0]["segmentation"]["counts"].encode(),
        }
    )
    assert np.array_equal(decoded, mask)


def test_save_json_writes_pydantic_models_without_defaults(tmp_path):
    data = lvis_dataset()
    model = CocoDataset.model_validate(data)
    rio.save_json(tmp_path / "m.json", model)
    back = json.loads((tmp_path / "m.json").read_text())
    assert all("iscrowd" not in a for a in back["annotations"])
    assert back["annotations"][0]["source"] == "coco-rem"


def test_save_json_is_atomic(tmp_path):
    out = tmp_path / "out.json"
    rio.save_json(out, {"a": 1})
    with pytest.raises(TypeError):
        rio.save_json(out, {"a": object()})
    assert json.loads(out.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.dictionaries(st.text(max_size=6), _json_values, max_size=5)
    | st.lists(_json_values, max_size=5)
)
def test_any_json_round_trips_through_both_readers(tmp_path, monkeypatch, value):
    path = tmp_path / "v.json"
    rio.save_json(path, value)
    assert rio.read_json(path) == json.loads(path.read_text()) == value
    with monkeypatch.context() as m:
        m.setattr(rio, "_MAP_MIN_BYTES", 0)
        m.setattr(rio, "_DROP_EVERY_BYTES", 16)
        assert rio.read_json(path) == value


# --- errors ------------------------------------------------------------------------------------


def _stdlib_position(text: str) -> tuple[int, int]:
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(text)
    return info.value.lineno, info.value.colno


@pytest.mark.parametrize(
    "text",
    ['{"images": [1,\n 2,, 3]}', '{"a": 1}\n  x', '{"a": [1, 2}', '{\n\n  "a": tru}', '[{"a": "b"'],
)
def test_malformed_json_reports_line_and_column(tmp_path, read_mode, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    line, col = _stdlib_position(text)
    with pytest.raises(RemError) as info:
        rio.read_json(path)
    assert info.value.path == str(path)
    assert info.value.where == f"line {line}, column {col}"
    assert info.value.detail.startswith("malformed JSON:")


def test_non_finite_numbers_are_located_by_path_line_and_column(tmp_path, read_mode):
    text = '{"annotations": [{"id": 1, "bbox": [1, NaN, 3, 4]},\n  {"id": 2, "area": -Infinity}],\n "x": 1e999}'
    path = tmp_path / "nan.json"
    path.write_text(text)
    problems = rio.diagnose_json(text.encode())
    assert [p.where for p in problems] == ["annotations[0].bbox[1]", "annotations[1].area", "x"]
    expected = []
    for token in ("NaN", "-Infinity", "1e999"):
        pos = text.index(token)
        line = text.count("\n", 0, pos) + 1
        expected.append((token, line, pos - text.rfind("\n", 0, pos)))
    for problem, (token, line, col) in zip(problems, expected):
        assert (
            f"non-finite number {token} is not valid JSON (line {line}, column {col})"
            in problem.message
        )
    with pytest.raises(RemError) as info:
        rio.read_json(path)
    assert info.value.where == "annotations[0].bbox[1]"
    assert "+2 more" in info.value.detail


def test_nan_inside_a_string_is_not_reported(tmp_path):
    text = '{"name": "NaN Infinity", "v": [NaN]}'
    problems = rio.diagnose_json(text.encode())
    assert len(problems) == 1 and problems[0].where == "v[0]"
    assert f"column {text.index('NaN]') + 1}" in problems[0].message


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        (b"", "line 1, column 1", "the file is empty"),
        (b'{"a":\n "\xff"}', "line 2, column 3", "invalid UTF-8 byte 0xff"),
        (b'["\\ud800"]', "line 1, column", "surrogate"),
    ],
)
def test_other_unreadable_json(tmp_path, raw, where, message):
    path = tmp_path / "bad.json"
    path.write_bytes(raw)
    with pytest.raises(RemError) as info:
        rio.read_json(path)
    assert info.value.where.startswith(where) and message in info.value.detail


def test_byte_order_mark_is_accepted(tmp_path, read_mode):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(dataset()))
    assert rio.read_json(path) == dataset()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RemError, match="file not found"):
        rio.read_json(tmp_path / "nope.json")
    with pytest.raises(RemError, match="is a directory"):
        rio.read_json(tmp_path)


def test_load_coco_rejects_wrong_shapes(tmp_path):
    with pytest.raises(RemError, match="got a JSON list"):
        rio.load_coco(write(tmp_path / "a.json", [1, 2]))
    with pytest.raises(RemError) as info:
        rio.load_coco(write(tmp_path / "b.json", {"annotations": []}))
    assert info.value.where == "images" and "missing" in info.value.detail
    with pytest.raises(RemError) as info:
        rio.load_coco(write(tmp_path / "c.json", {"images": {}, "categories": []}))
    assert info.value.where == "images" and "expected a list, got dict" in info.value.detail


def test_index_errors_name_the_record(tmp_path):
    data = dataset()
    data["annotations"][2]["id"] = 10
    coco = rio.load_coco(write(tmp_path / "dup.json", data))
    with pytest.raises(RemError) as info:
        coco.anns  # noqa: B018 - the lazy index is built here
    assert info.value.where == "annotations[2].id" and "duplicate id 10" in info.value.detail
    data = dataset()
    del data["annotations"][1]["image_id"]
    coco = rio.load_coco(write(tmp_path / "missing.json", data))
    with pytest.raises(RemError) as info:
        coco.img_to_anns  # noqa: B018
    assert info.value.where == "annotations[1]" and "missing 'image_id'" in info.value.detail


def test_detect_kind():
    assert rio.detect_kind(dataset()) == "coco"
    assert rio.detect_kind(lvis_dataset()) == "lvis"
    assert rio.detect_kind([{"image_id": 1}]) == "results"


def test_load_results(tmp_path):
    coco = rio.load_coco(write(tmp_path / "gt.json", dataset()))
    dets = [{"image_id": 1, "category_id": 2, "score": 0.9, "bbox": [0, 0, 1, 1]}]
    assert rio.load_results(write(tmp_path / "r.json", dets), coco) == dets
    bad = [*dets, {"image_id": 9, "category_id": 2, "score": 0.1, "bbox": [0, 0, 1, 1]}]
    with pytest.raises(RemError) as info:
        rio.load_results(write(tmp_path / "bad.json", bad), coco)
    assert (
        info.value.where == "[1].image_id"
        and "image 9 is not in the ground-truth" in info.value.detail
    )
    with pytest.raises(RemError, match="missing 'score'"):
        rio.load_results(write(tmp_path / "s.json", [{"image_id": 1, "category_id": 2}]))
    with pytest.raises(RemError, match="instances file, not a results file"):
        rio.load_results(write(tmp_path / "i.json", dataset()))


def test_huge_files_are_diagnosed_by_line_and_column_only(tmp_path, monkeypatch):
    monkeypatch.setattr(rio, "_STDLIB_MAX_BYTES", 0)
    text = '{"a": [1, 2],\n "b": [NaN, -Infinity]}'
    problems = rio.diagnose_json(text.encode())
    assert [(p.where, p.message) for p in problems] == [
        ("line 2, column 8", "non-finite number NaN is not valid JSON; numbers must be finite"),
        (
            "line 2, column 13",
            "non-finite number -Infinity is not valid JSON; numbers must be finite",
        ),
    ]
    text = '{"a": [1,\n 2,, 3]}'
    line, col = _stdlib_position(text)
    [problem] = rio.diagnose_json(text.encode())
    assert problem.where == f"line {line}, column {col}" and problem.message.startswith(
        "malformed JSON"
    )
