"""Image lookup (file_name, coco_url, id; several roots; no escaping the root) and reading
(EXIF orientation, size check against the JSON record, corrupt files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rem_refine.images import ImageProblem, find_image, read_rgb


def _jpeg(path: Path, width: int, height: int, orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (width, height), (200, 30, 30))
    img.paste((30, 30, 200), (0, 0, width // 2, height // 2))  # a marked top-left quarter
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return path


def test_lookup_order_and_several_roots(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    _jpeg(b / "val2017" / "000000000042.jpg", 8, 6)
    rec = {"id": 42, "file_name": "val2017/000000000042.jpg"}
    assert find_image(rec, [a, b]) == b / "val2017" / "000000000042.jpg"
    # LVIS records have no file_name; the coco_url's last components are tried.
    lvis = {"id": 42, "coco_url": "http://images.cocodataset.org/val2017/000000000042.jpg"}
    assert find_image(lvis, [a, b]) == b / "val2017" / "000000000042.jpg"
    _jpeg(a / "000000000007.jpg", 8, 6)
    assert find_image({"id": 7}, [a, b]) == a / "000000000007.jpg"  # the reference's naming
    with pytest.raises(ImageProblem) as info:
        find_image({"id": 9, "file_name": "nope.jpg"}, [a, b])
    assert info.value.kind == "missing"


@pytest.mark.parametrize("name", ["../secret.jpg", "a/../../secret.jpg", "/etc/passwd", "C:x.jpg"])
def test_file_names_escaping_the_root_are_refused(tmp_path, name):
    root = tmp_path / "images"
    root.mkdir()
    _jpeg(tmp_path / "secret.jpg", 4, 4)
    with pytest.raises(ImageProblem) as info:
        find_image({"id": 1, "file_name": name}, [root])
    assert info.value.kind == "unsafe-path"


def test_exif_orientation_and_size_check(tmp_path):
    # Stored 20 wide x 10 high; orientation 6 means "rotate 90 degrees clockwise to display".
    path = _jpeg(tmp_path / "rot.jpg", 20, 10, orientation=6)
    shown = read_rgb(path, (20, 10), "apply")
    assert shown.shape == (20, 10, 3)
    # After a clockwise turn the marked top-left quarter ends up top-right.
    assert shown[2, 8, 2] > 150 and shown[2, 1, 0] > 150
    stored = read_rgb(path, (10, 20), "ignore")
    assert stored.shape == (10, 20, 3)
    assert np.array_equal(read_rgb(path, (10, 20), "auto"), stored)  # only stored size matches
    assert np.array_equal(read_rgb(path, (20, 10), "auto"), shown)
    with pytest.raises(ImageProblem) as info:
        read_rgb(path, (10, 20), "apply")
    assert info.value.kind == "size-mismatch"


def test_corrupt_and_truncated_images(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ImageProblem) as info:
        read_rgb(bad, None)
    assert info.value.kind == "corrupt"
    good = _jpeg(tmp_path / "good.jpg", 64, 64)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageProblem) as info:
        read_rgb(cut, (64, 64))
    assert info.value.kind == "corrupt"
