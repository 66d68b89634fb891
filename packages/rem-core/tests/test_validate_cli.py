"""`rem validate` on every kind of bad input: message text, exit code 2, no traceback."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from coco_samples import SMALL_RLE_COUNTS, dataset, lvis_dataset, val30, write
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from rem_core.cli.main import cli

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def run(*args: str):
    result = CliRunner().invoke(cli, ["validate", *map(str, args)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def assert_invalid(path, *expected: str, args: tuple[str, ...] = ()) -> list[str]:
    """Run validate on ``path``; each expected ``WHERE: message`` must be a line; exit 2."""
    result = run(path, *args)
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    for text in expected:
        assert f"{path}: {text}" in lines, f"missing line {text!r} in:\n{result.output}"
    assert "error" in lines[-1]
    return lines


def test_clean_file_passes():
    path = val30()
    result = run(path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path}: warning: 3 uncompressed RLE segmentations (legal; `rem convert --to rle` "
        "compresses them)",
        f"{path}: ok (coco: 30 images, 324 annotations, 80 categories)",
    ]


def test_malformed_json_gives_line_and_column(tmp_path):
    text = json.dumps(dataset(), indent=1).replace('"area": 4,', '"area": 4,,', 1)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(json.JSONDecodeError) as ref:
        json.loads(text)
    assert_invalid(
        path,
        f"line {ref.value.lineno}, column {ref.value.colno}: malformed JSON: Expecting property name enclosed in double quotes",
    )


def test_nan_is_located(tmp_path):
    text = json.dumps(dataset(), indent=1).replace('"area": 310.0', '"area": NaN', 1)
    path = tmp_path / "nan.json"
    path.write_text(text)
    pos = text.index("NaN")
    line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    assert_invalid(
        path,
        f"annotations[0].area: non-finite number NaN is not valid JSON (line {line}, column {col}); "
        "numbers must be finite",
    )


def test_schema_errors_have_json_paths(tmp_path):
    data = dataset()
    data["images"][1]["height"] = -1
    data["images"][2]["id"] = "3"
    data["categories"][2]["name"] = 5
    del data["annotations"][0]["category_id"]
    data["annotations"][1]["segmentation"] = "not a mask"
    data["annotations"][2]["iscrowd"] = 2
    data["annotations"][2]["area"] = "big"
    data["annotations"][2]["segmentation"][1][3] = "y"
    path = write(tmp_path / "schema.json", data)
    assert_invalid(
        path,
        "images[1].height: Input should be greater than 0 (got -1)",
        "images[2].id: Input should be a valid integer (got '3')",
        "categories[2].name: Input should be a valid string (got 5)",
        "annotations[0]: missing required field 'category_id'",
        "annotations[1].segmentation: segmentation must be polygons [[x1, y1, ...], ...] or an RLE "
        'object {"size": [h, w], "counts": ...}, got string \'not a mask\'',
        "annotations[2].iscrowd: iscrowd must be 0 or 1, got number 2",
        "annotations[2].area: area must be a finite number, got string 'big'",
        "annotations[2].segmentation[1][3]: polygon coordinates must be finite numbers, got string 'y'",
    )


def test_top_level_shape(tmp_path):
    assert_invalid(
        write(tmp_path / "a.json", {"images": []}), "categories: missing the 'categories' list"
    )
    assert_invalid(
        write(tmp_path / "b.json", {"images": {}, "categories": []}),
        "images: images must be a list, got object",
    )
    assert_invalid(
        write(tmp_path / "c.json", [1]),
        "(root): an instances file is a JSON object with images, annotations and categories, got array",
        args=("--kind", "coco"),
    )
    assert_invalid(
        write(tmp_path / "d.json", dataset()),
        "(root): a results file is a JSON list of detections, got object (this looks like an "
        "instances file; use --kind coco)",
        args=("--kind", "results"),
    )


def test_duplicate_ids(tmp_path):
    data = dataset()
    data["images"].append(dict(data["images"][0]))
    data["categories"].append({"id": 2, "name": "dog again"})
    data["annotations"][2]["id"] = 10
    path = write(tmp_path / "dup.json", data)
    assert_invalid(
        path,
        "images[3].id: duplicate id 1 (first at images[0])",
        "categories[3].id: duplicate id 2 (first at categories[1])",
        "annotations[2].id: duplicate annotation id 10 (first at annotations[0])",
    )


def test_annotations_pointing_nowhere(tmp_path):
    data = dataset()
    data["annotations"][0]["image_id"] = 99
    data["annotations"][1]["category_id"] = 7
    path = write(tmp_path / "orphans.json", data)
    assert_invalid(
        path,
        "annotations[0].image_id: image 99 is not in images",
        "annotations[1].category_id: category 7 is not in categories",
    )


def test_degenerate_polygons_are_errors_and_really_break_pycocotools(tmp_path):
    data = dataset()
    data["annotations"][0]["segmentation"] = [[1, 1, 5, 5]]
    data["annotations"][2]["segmentation"] = [[1, 1, 8, 1, 8, 9, 4]]
    path = write(tmp_path / "poly.json", data)
    assert_invalid(
        path,
        "annotations[0].segmentation[0]: polygon has 4 coordinates (2 points); a polygon needs "
        "at least 3 points (6 coordinates)",
        "annotations[2].segmentation[0]: polygon has an odd number of coordinates (7); "
        "coordinates come in x, y pairs",
    )
    # Independent truth: pycocotools cannot rasterise the 4-number polygon (it takes it for a box).
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    with pytest.raises(TypeError):
        coco.annToRLE(coco.anns[10])


def test_rle_size_must_match_the_image(tmp_path):
    data = dataset()
    data["annotations"][1]["segmentation"] = {"size": [5, 4], "counts": [20]}
    data["annotations"][0]["segmentation"] = {"size": [40, 60], "counts": [2000, 5]}
    path = write(tmp_path / "rle.json", data)
    assert_invalid(
        path,
        "annotations[1].segmentation.size: RLE size [5, 4] does not match image 1 (height 4, width 5)",
        "annotations[0].segmentation.counts: uncompressed RLE counts add up to 2005 pixels; "
        "size [40, 60] has 2400",
    )


def test_compressed_rle_checks(tmp_path):
    mask = np.zeros((40, 60), dtype=np.uint8, order="F")
    mask[5:9, 3:20] = 1
    good = mask_utils.encode(mask)["counts"].decode()
    data = dataset()
    data["annotations"][0]["segmentation"] = {"size": [40, 60], "counts": good}
    assert run(write(tmp_path / "ok.json", data)).exit_code == 0
    data["annotations"][0]["segmentation"] = {"size": [40, 60], "counts": good + "~"}
    data["annotations"][2]["segmentation"] = {"size": [40, 60]}
    assert_invalid(
        write(tmp_path / "bad.json", data),
        "annotations[0].segmentation.counts: compressed RLE counts hold characters outside "
        "pycocotools' encoding ('0'..'o')",
        "annotations[2].segmentation: RLE object is missing 'counts'",
    )


def test_negative_bbox_and_area(tmp_path):
    data = dataset()
    data["annotations"][0]["bbox"] = [1, 2, -3, 4]
    data["annotations"][1]["area"] = -1
    data["annotations"][2]["bbox"] = [1, 2, 3]
    path = write(tmp_path / "box.json", data)
    assert_invalid(
        path,
        "annotations[0].bbox: bbox width and height must be >= 0, got [1, 2, -3, 4]",
        "annotations[1].area: area must be >= 0, got -1",
        "annotations[2].bbox: bbox must be [x, y, width, height], got array [1, 2, 3]",
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../secret.jpg", "contains a '..' component"),
        ("a/../../b.jpg", "contains a '..' component"),
        ("..\\b.jpg", "contains a '..' component"),
        ("/etc/passwd", "is an absolute path"),
        ("C:\\images\\a.jpg", "is an absolute path"),
        ("\\\\server\\share\\a.jpg", "is an absolute path"),
    ],
)
def test_file_names_that_escape_the_image_dir(tmp_path, name, why):
    data = dataset()
    data["images"][0]["file_name"] = name
    path = write(tmp_path / "names.json", data)
    assert_invalid(
        path, f"images[0].file_name: {name!r} {why}; it would escape the image directory"
    )


def test_image_dir_checks_that_files_exist(tmp_path):
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.jpg"):
        (images / name).write_bytes(b"x")
    path = write(tmp_path / "d.json", dataset())
    assert_invalid(
        path,
        f"images[2].file_name: 'c.jpg' not found in {images}",
        args=("--image-dir", str(images)),
    )
    (images / "c.jpg").write_bytes(b"x")
    assert run(path, "--image-dir", images).exit_code == 0


def test_messy_but_legal_records_are_counted_warnings(tmp_path):
    path = write(tmp_path / "lvis.json", lvis_dataset())
    result = run(path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path}: warning: 3 annotations without iscrowd (read as 0)",
        f"{path}: warning: 1 images without annotations",
        f"{path}: warning: 1 uncompressed RLE segmentations (legal; `rem convert --to rle` "
        "compresses them)",
        f"{path}: ok (lvis: 3 images, 3 annotations, 3 categories)",
    ]


def test_lvis_category_lists_must_name_categories(tmp_path):
    data = lvis_dataset()
    data["images"][1]["neg_category_ids"] = [5, 42]
    assert_invalid(
        write(tmp_path / "lvis.json", data),
        "images[1].neg_category_ids[1]: category 42 is not in categories",
    )
    data = lvis_dataset()
    data["categories"][0]["frequency"] = "x"
    assert_invalid(
        write(tmp_path / "lvis2.json", data),
        "categories[0].frequency: Input should be 'r', 'c' or 'f' (got 'x')",
    )


def test_results_against_ground_truth(tmp_path):
    gt = write(tmp_path / "gt.json", dataset())
    dets = [
        {
            "image_id": 1,
            "category_id": 2,
            "score": 0.9,
            "segmentation": {"size": [4, 5], "counts": "52207"},
        },
        {"image_id": 4, "category_id": 2, "score": 0.8, "bbox": [0, 0, 1, 1]},
        {"image_id": 2, "category_id": 0, "score": 0.7, "bbox": [0, 0, 1, 1]},
        {
            "image_id": 2,
            "category_id": 1,
            "score": 0.6,
            "segmentation": {"size": [4, 5], "counts": "52207"},
        },
        {"image_id": 2, "category_id": 1, "score": "high", "bbox": [0, 0, 1, 1]},
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"image_id": 2, "category_id": 1, "score": 0.5},
    ]
    path = write(tmp_path / "dets.json", dets)
    assert run(path).exit_code == 2  # score and geometry problems need no GT
    lines = assert_invalid(
        path,
        f"[1].image_id: image 4 is not in {gt}",
        f"[2].category_id: category 0 is not in {gt}",
        "[3].segmentation.size: RLE size [4, 5] does not match image 2 (height 40, width 60)",
        "[4].score: score must be a finite number, got string 'high'",
        "[5]: missing required field 'score'",
        "[6]: a detection needs a bbox or a segmentation",
        args=("--gt", str(gt)),
    )
    assert not any(line.startswith(f"{path}: [0]") for line in lines)
    assert lines[-1] == f"{path}: 6 errors (results: 7 detections, 3 images)"


def test_gt_only_applies_to_results(tmp_path):
    gt = write(tmp_path / "gt.json", dataset())
    result = run(gt, "--gt", gt)
    assert result.exit_code == 2 and "--gt applies to results files" in result.output


def test_max_errors_truncates_the_listing(tmp_path):
    data = dataset()
    for ann in data["annotations"]:
        ann["image_id"] = 99
    path = write(tmp_path / "many.json", data)
    result = run(path, "--max-errors", "1")
    assert result.exit_code == 2
    assert f"{path}: ... 2 more errors not shown" in result.stdout.splitlines()
    assert (
        result.stdout.splitlines()[-1]
        == f"{path}: 3 errors (coco: 3 images, 3 annotations, 3 categories)"
    )


def test_unreadable_files_are_reported_and_others_still_checked(tmp_path):
    good = write(tmp_path / "good.json", dataset())
    result = run(tmp_path / "missing.json", good)
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'missing.json'}: file not found" in result.stdout
    assert f"{good}: ok (coco: 3 images, 3 annotations, 3 categories)" in result.stdout


def test_rle_example_matches_pycocotools():
    # The fixture's hand-computed uncompressed RLE: 2x2 square at x=1..2, y=1..2 in a 4x5 image.
    rle = mask_utils.frPyObjects({"size": [4, 5], "counts": SMALL_RLE_COUNTS}, 4, 5)
    expected = np.zeros((4, 5), dtype=np.uint8)
    expected[1:3, 1:3] = 1
    assert np.array_equal(mask_utils.decode(rle), expected)
    assert mask_utils.encode(np.asfortranarray(expected))["counts"].decode() == "52207"
