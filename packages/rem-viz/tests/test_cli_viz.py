"""`rem viz`: COCO-ReM's options, filters, missing images and errors, through the real CLI."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

from rem_core.cli.main import cli


@pytest.fixture(scope="module")
def coco_api(coco30):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(coco30 / "instances_val2017_30.json"))


def run(*args):
    return CliRunner().invoke(cli, ["viz", *map(str, args)], catch_exceptions=False)


def base_args(coco30, out):
    return [
        "--input-json",
        coco30 / "instances_val2017_30.json",
        "--image-dir",
        coco30 / "val2017",
        "--output",
        out,
        "--workers",
        "1",
    ]


def test_class_name_and_suffix_name_files_like_coco_rem(coco30, coco_api, tmp_path):
    out = tmp_path / "viz"
    result = run(
        *base_args(coco30, out), "--class-name", "cow", "--filename-suffix", "rem", "--draw-labels"
    )
    assert result.exit_code == 0, result.output
    dog = coco_api.getCatIds(catNms=["cow"])
    expected = sorted(
        coco_api.imgs[i]["file_name"].replace(".jpg", "_cow_rem.jpg")
        for i in coco_api.getImgIds(catIds=dog)
    )
    assert expected, "the sample should hold cows"
    assert sorted(p.name for p in out.iterdir()) == expected
    assert f"wrote {len(expected)} images" in result.output


def test_image_id_and_max_images_filters(coco30, coco_api, tmp_path):
    out = tmp_path / "one"
    result = run(*base_args(coco30, out), "--image-id", 5001, "--image-id", 139)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["000000000139.jpg", "000000005001.jpg"]
    out = tmp_path / "three"
    result = run(*base_args(coco30, out), "--max-images", 3, "--format", "png")
    assert result.exit_code == 0, result.output
    first3 = sorted(i for i in coco_api.imgs if coco_api.imgToAnns[i])[:3]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i:012d}.png" for i in first3)


def test_unknown_class_name_lists_the_valid_ones(coco30, tmp_path):
    result = run(*base_args(coco30, tmp_path / "x"), "--class-name", "dgo")
    assert result.exit_code == 2
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert "unknown category name 'dgo'" in line
    assert "did you mean 'dog'" in line
    assert "valid names (80):" in line and "person" in line and "toothbrush" in line


def test_unknown_image_and_category_ids_are_user_errors(coco30, tmp_path):
    result = run(*base_args(coco30, tmp_path / "x"), "--image-id", 12345)
    assert result.exit_code == 2 and "image id 12345 is not in the file" in result.output
    result = run(*base_args(coco30, tmp_path / "x"), "--category-id", 12)
    assert result.exit_code == 2 and "unknown category id 12; valid ids: 1, 2, 3" in result.output


def test_missing_images_are_listed_and_skipped(coco30, coco_api, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with_anns = sorted(i for i in coco_api.imgs if coco_api.imgToAnns[i])
    present = with_anns[:4]
    for i in present:
        name = coco_api.imgs[i]["file_name"]
        shutil.copy(coco30 / "val2017" / name, images / name)
    out = tmp_path / "out"
    args = [
        "--input-json",
        coco30 / "instances_val2017_30.json",
        "--image-dir",
        images,
        "--output",
        out,
        "--workers",
        "1",
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    n_missing = len(with_anns) - len(present)
    assert f"warning: {n_missing} images missing from {images}, skipped" in result.output
    missing = [coco_api.imgs[i]["file_name"] for i in with_anns[len(present) :]]
    assert missing[0] in result.output  # the first ones are named on the console...
    listing = out / "missing_images.txt"  # ...and all of them in a file, as there are many
    assert f"full list: {listing}" in result.output
    assert listing.read_text().split() == missing
    drawn = sorted(p.name for p in out.iterdir() if p.suffix == ".jpg")
    assert drawn == sorted(coco_api.imgs[i]["file_name"] for i in present)


def test_no_image_found_at_all_is_an_error(coco30, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(
        "--input-json",
        coco30 / "instances_val2017_30.json",
        "--image-dir",
        empty,
        "--output",
        tmp_path / "o",
    )
    assert result.exit_code == 2
    assert "none of the 30 images was found" in result.output


def test_results_are_drawn_above_the_threshold(coco30, coco_api, tmp_path):
    dets = []
    for k, a in enumerate(coco_api.dataset["annotations"]):
        rle = coco_api.annToRLE(a)
        dets.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                "score": (k % 10) / 10,
            }
        )
    results = tmp_path / "dets.json"
    results.write_text(json.dumps(dets))
    out = tmp_path / "dets"
    result = run(*base_args(coco30, out), "--results", results, "--score-threshold", 0.65)
    assert result.exit_code == 0, result.output
    kept = [d for d in dets if d["score"] >= 0.65]
    n_images = len({d["image_id"] for d in kept})
    assert f"wrote {n_images} images ({len(kept)} masks)" in result.output


def test_results_file_given_as_input_json_gets_a_hint(coco30, tmp_path):
    results = tmp_path / "dets.json"
    results.write_text("[]")
    result = run(
        "--input-json", results, "--image-dir", coco30 / "val2017", "--output", tmp_path / "o"
    )
    assert result.exit_code == 2
    assert "results list" in result.output and "--results" in result.output


def test_two_workers_write_the_same_bytes_as_one(coco30, tmp_path):
    one, two = tmp_path / "w1", tmp_path / "w2"
    common = [
        "--input-json",
        coco30 / "instances_val2017_30.json",
        "--image-dir",
        coco30 / "val2017",
        "--max-images",
        6,
        "--draw-labels",
    ]
    assert run(*common, "--output", one, "--workers", 1).exit_code == 0
    assert run(*common, "--output", two, "--workers", 2).exit_code == 0
    names = sorted(p.name for p in one.iterdir())
    assert len(names) == 6 and names == sorted(p.name for p in two.iterdir())
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_html_gallery_lists_every_written_image(coco30, tmp_path):
    out = tmp_path / "gallery"
    result = run(*base_args(coco30, out), "--max-images", 5, "--html")
    assert result.exit_code == 0, result.output
    page = out / "index.html"
    assert f"report: {page}" in result.output
    text = page.read_text()
    data = json.loads(text.split('id="report-data">')[1].split("</script>")[0])
    assert len(data["cards"]) == 5
    for card in data["cards"]:
        assert (out / card["full"]).is_file() and (out / card["thumb"]).is_file()


def test_unreadable_and_wrong_sized_images_are_listed_not_fatal(coco30, tmp_path):
    from rem_core.io import read_json

    data = read_json(coco30 / "instances_val2017_30.json")
    keep = [139, 5001, 25986]
    data["images"] = [i for i in data["images"] if i["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    images = tmp_path / "images"
    images.mkdir()
    for record in data["images"]:
        shutil.copy(coco30 / "val2017" / record["file_name"], images / record["file_name"])
    (images / "000000005001.jpg").write_bytes(b"not a jpeg")
    wrong = next(i for i in data["images"] if i["id"] == 25986)
    wrong["height"] += 1
    dataset = tmp_path / "three.json"
    dataset.write_text(json.dumps(data))
    out = tmp_path / "out"
    result = run("--input-json", dataset, "--image-dir", images, "--output", out, "--html")
    assert result.exit_code == 0, result.output
    assert "warning: 2 images not drawn" in result.output
    assert "000000005001.jpg (cannot be decoded as an image)" in result.output
    assert f"but the annotations say {wrong['width']}x{wrong['height']}" in result.output
    assert sorted(p.name for p in out.glob("*.jpg")) == ["000000000139.jpg"]
    page = (out / "index.html").read_text()
    assert "images not drawn (2)" in page


def test_lvis_style_file_without_file_names_or_iscrowd(coco30, coco_api, tmp_path):
    """LVIS names images by coco_url only, has no iscrowd and uses '_' in category names."""
    from rem_core.io import read_json

    data = read_json(coco30 / "instances_val2017_30.json")
    for record in data["images"]:
        record["coco_url"] = f"http://images.cocodataset.org/val2017/{record.pop('file_name')}"
        record["neg_category_ids"] = []
        record["not_exhaustive_category_ids"] = []
    for ann in data["annotations"]:
        ann.pop("iscrowd")
    for cat in data["categories"]:
        cat["name"] = cat["name"].replace(" ", "_")
        cat["frequency"] = "f"
    lvis = tmp_path / "lvis.json"
    lvis.write_text(json.dumps(data))
    out = tmp_path / "out"
    # The image folder holds split folders (LVIS mixes train2017 and val2017 images).
    result = run(
        "--input-json",
        lvis,
        "--image-dir",
        coco30,
        "--output",
        out,
        "--class-name",
        "dining table",
        "--draw-labels",
        "--workers",
        1,
    )
    assert result.exit_code == 0, result.output
    table = coco_api.getCatIds(catNms=["dining table"])
    expected = sorted(
        coco_api.imgs[i]["file_name"].replace(".jpg", "_dining_table.jpg")
        for i in coco_api.getImgIds(catIds=table)
    )
    assert expected and sorted(p.name for p in out.iterdir()) == expected


def test_image_lookup_stays_inside_the_image_folder(tmp_path):
    from rem_viz.images import locate_image

    folder = tmp_path / "images"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (folder / "a.jpg").write_bytes(b"x")
    assert locate_image(folder, {"id": 7, "file_name": "../secret.jpg"}) is None
    record = {"id": 7, "file_name": "../../etc/a.jpg", "coco_url": "http://x/val2017/b.jpg"}
    assert locate_image(folder, record) == folder / "a.jpg"
