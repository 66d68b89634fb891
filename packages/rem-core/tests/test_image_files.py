"""Image-file lookup shared by refine, viz and the model engine."""

from __future__ import annotations

from pathlib import Path

from rem_core.image_files import candidate_names, escapes_root, find_image_file, image_name


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_candidates_most_specific_first_and_inside_the_folder():
    record = {"id": 7, "file_name": "../../etc/passwd", "coco_url": "http://x/val2017/a.jpg"}
    assert [str(p) for p in candidate_names(record)] == [
        "passwd",
        "val2017/a.jpg",
        "a.jpg",
        "000000000007.jpg",
    ]
    assert [str(p) for p in candidate_names({"id": 3, "file_name": "/abs/b.png"})] == [
        "b.png",
        "000000000003.jpg",
    ]
    lvis = {"id": 42, "coco_url": "http://images.cocodataset.org/val2017/000000000042.jpg?x=1"}
    assert [str(p) for p in candidate_names(lvis)] == [
        "val2017/000000000042.jpg",
        "000000000042.jpg",
    ]


def test_escaping_file_names():
    for name in ["../secret.jpg", "a/../../secret.jpg", "/etc/passwd", "C:x.jpg", "a\\..\\..\\b"]:
        assert escapes_root({"id": 1, "file_name": name}), name
    for name in ["a.jpg", "val2017/a.jpg", "a..b.jpg"]:
        assert not escapes_root({"id": 1, "file_name": name}), name
    assert not escapes_root({"id": 1})  # LVIS: no file_name at all


def test_lookup_over_several_roots(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    target = _touch(b / "val2017" / "000000000042.jpg")
    assert find_image_file({"id": 42, "file_name": "val2017/000000000042.jpg"}, [a, b]) == target
    lvis = {"id": 42, "coco_url": "http://images.cocodataset.org/val2017/000000000042.jpg"}
    assert find_image_file(lvis, [a, b]) == target
    # The folder already is the split folder: the file name's last part is found.
    assert find_image_file({"id": 42, "file_name": "val2017/000000000042.jpg"}, [b / "val2017"])
    _touch(tmp_path / "secret.jpg")
    assert find_image_file({"id": 1, "file_name": "../secret.jpg"}, [a]) is None
    assert find_image_file({"id": 9, "file_name": "nope.jpg"}, [a, b]) is None


def test_image_name():
    assert image_name({"id": 1, "file_name": "x/y.jpg"}) == "x/y.jpg"
    assert image_name({"id": 1, "coco_url": "http://h/train2017/z.jpg"}) == "z.jpg"
    assert image_name({"id": 5}) == "000000000005.jpg"
