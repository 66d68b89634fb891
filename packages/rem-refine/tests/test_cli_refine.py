"""`rem refine` end to end with a tiny random SAM: output contract (input order, untouched crowd
and other records, uncompressed RLE with matching area and bbox), manifest and accounting,
every input form, per-image problems, user errors with exit code 2."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import subset
from pycocotools import mask as coco_mask

from rem_core.cli.main import cli
from rem_core.masks import to_rle, to_uncompressed


def _run(args: list[str], env: dict | None = None):
    return CliRunner().invoke(cli, ["refine", *args], env=env, catch_exceptions=False)


def _base_args(inp: Path, out: Path, images: Path, ckpt: Path) -> list[str]:
    return [
        "--input-json",
        str(inp),
        "--image-dir",
        str(images),
        "-o",
        str(out),
        "--arch",
        "tiny",
        "--checkpoint",
        str(ckpt),
        "--num-trials",
        "2",
        "--num-extra-points",
        "1",
        "--no-progress",
        "--seed",
        "3",
    ]


def test_refine_output_contract(tmp_path, synth_sample, tiny_checkpoint):
    data = orjson.loads(subset(synth_sample.coarse, tmp_path / "s.json", 2).read_bytes())
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    anns = data["annotations"]
    # Every segmentation form: polygons, compressed RLE, uncompressed RLE.
    h, w = sizes[anns[1]["image_id"]]
    anns[1]["segmentation"] = to_rle(anns[1]["segmentation"], h, w)
    h, w = sizes[anns[2]["image_id"]]
    anns[2]["segmentation"] = to_uncompressed(to_rle(anns[2]["segmentation"], h, w))
    anns[3]["my_field"] = {"kept": True}
    anns.reverse()  # not grouped by image in first-appearance order: output must follow input
    assert any(a.get("iscrowd") for a in anns)
    inp = tmp_path / "in.json"
    inp.write_bytes(orjson.dumps(data))
    out = tmp_path / "out" / "refined.json"
    result = _run(
        [
            *_base_args(inp, out, synth_sample.image_dir, tiny_checkpoint),
            "--box-only-names",
            "red disc",
        ]
    )
    assert result.exit_code == 0, result.output

    refined = orjson.loads(out.read_bytes())
    assert [a["id"] for a in refined["annotations"]] == [a["id"] for a in anns]
    assert refined["images"] == data["images"] and refined["categories"] == data["categories"]
    n_refined = 0
    for before, after in zip(anns, refined["annotations"]):
        assert list(after) == list(before)  # same keys in the same order
        if before.get("iscrowd"):
            assert after == before
            continue
        assert {k: v for k, v in after.items() if k not in ("segmentation", "area", "bbox")} == {
            k: v for k, v in before.items() if k not in ("segmentation", "area", "bbox")
        }
        seg = after["segmentation"]
        assert isinstance(seg["counts"], list) and seg["size"] == list(sizes[after["image_id"]])
        rle = coco_mask.frPyObjects(seg, *seg["size"])
        assert after["area"] == int(coco_mask.area(rle)) > 0
        assert after["bbox"] == [float(v) for v in coco_mask.toBbox(rle)]
        n_refined += 1
    assert n_refined == sum(1 for a in anns if not a.get("iscrowd"))

    manifest = orjson.loads((out.parent / "refined.manifest.json").read_bytes())
    assert manifest["input"]["sha256"] == hashlib.sha256(inp.read_bytes()).hexdigest()
    assert manifest["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (
        manifest["checkpoint"]["sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    )
    assert manifest["seed"] == 3 and manifest["arguments"]["num_trials"] == 2
    assert manifest["box_only"]["category_ids"] == [1]
    assert "torch" in manifest["versions"] and "rem-refine" in manifest["versions"]
    totals = manifest["counts"]["annotations"]
    assert totals["input"] == totals["output"] == len(anns)
    assert totals["refined"] == n_refined and totals["kept_crowd"] == len(anns) - n_refined
    ledger = orjson.loads((out.parent / "refined.accounting.json").read_bytes())
    assert ledger["stage"] == "refine" and ledger["totals"]["refined"] == n_refined
    assert not (out.parent / "refined.json.partial").exists()


def test_image_problems_are_reported_per_image(tmp_path, synth_sample, tiny_checkpoint):
    images = tmp_path / "images"
    shutil.copytree(synth_sample.image_dir, images)
    data = orjson.loads(subset(synth_sample.coarse, tmp_path / "s.json", 1).read_bytes())
    with_anns = sorted({a["image_id"] for a in data["annotations"]})
    recs = {im["id"]: im for im in data["images"]}
    (images / recs[with_anns[0]]["file_name"]).unlink()
    (images / recs[with_anns[1]]["file_name"]).write_bytes(b"\xff\xd8 truncated")
    recs[with_anns[2]]["file_name"] = "../../etc/passwd"
    inp = tmp_path / "in.json"
    inp.write_bytes(orjson.dumps(data))
    out = tmp_path / "out.json"
    result = _run(_base_args(inp, out, images, tiny_checkpoint))
    assert result.exit_code == 0, result.output
    manifest = orjson.loads((tmp_path / "out.manifest.json").read_bytes())
    assert manifest["counts"]["images"]["problems"] == {
        "corrupt": 1,
        "missing": 1,
        "unsafe-path": 1,
    }
    refined = orjson.loads(out.read_bytes())
    assert refined["annotations"] == data["annotations"]  # nothing refined, nothing lost
    ledger = orjson.loads((tmp_path / "out.accounting.json").read_bytes())
    assert {p["problem"] for p in ledger["extra"]["image_problems"]} == {
        "corrupt",
        "missing",
        "unsafe-path",
    }


def test_lvis_input_without_iscrowd_and_with_coco_urls(tmp_path, synth_sample, tiny_checkpoint):
    data = orjson.loads(subset(synth_sample.coarse, tmp_path / "s.json", 1).read_bytes())
    for im in data["images"]:
        im["coco_url"] = f"http://images.cocodataset.org/val2017/{im.pop('file_name')}"
    for ann in data["annotations"]:
        ann.pop("iscrowd", None)
    data["categories"][0].update(name="dining_table", synonyms=["dining_table", "dinner_table"])
    inp = tmp_path / "lvis.json"
    inp.write_bytes(orjson.dumps(data))
    root = tmp_path / "coco"
    shutil.copytree(synth_sample.image_dir, root / "val2017")
    out = tmp_path / "out.json"
    result = _run([*_base_args(inp, out, root, tiny_checkpoint), "--num-extra-points", "0"])
    assert result.exit_code == 0, result.output
    manifest = orjson.loads((tmp_path / "out.manifest.json").read_bytes())
    # The default list says "dining table"; LVIS spells it dining_table: found, not a KeyError.
    assert data["categories"][0]["id"] in manifest["box_only"]["category_ids"]
    assert "dining table" not in manifest["box_only"]["unknown_names"]
    totals = manifest["counts"]["annotations"]
    assert totals["refined"] == len(data["annotations"])  # no iscrowd key means not crowd
    assert "iscrowd" not in orjson.loads(out.read_bytes())["annotations"][0]


def test_user_errors_exit_2(tmp_path, synth_sample, tiny_checkpoint):
    inp = subset(synth_sample.coarse, tmp_path / "in.json", 1)
    out = tmp_path / "out.json"
    env = {"REM_CACHE_DIR": str(tmp_path / "cache")}
    result = CliRunner().invoke(
        cli, ["refine", "--input-json", str(inp), "-o", str(out), "--no-progress"], env=env
    )
    assert result.exit_code == 2
    assert (
        "error: no checkpoint for vit_h: pass --checkpoint PATH or run `rem weights download "
        "sam_vit_h`" in result.output
    )

    (tmp_path / "out.json.partial").mkdir()
    (tmp_path / "out.json.partial" / "run.json").write_text("{}")
    result = _run(_base_args(inp, out, synth_sample.image_dir, tiny_checkpoint))
    assert result.exit_code == 2
    assert "out.json.partial: an interrupted run left partial results here; pass --resume" in (
        result.output
    )
    result = _run([*_base_args(inp, out, synth_sample.image_dir, tiny_checkpoint), "--resume"])
    assert result.exit_code == 2 and "--resume with different settings or input" in result.output

    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [{"id": 1}]}')
    result = _run(_base_args(bad, tmp_path / "o2.json", synth_sample.image_dir, tiny_checkpoint))
    assert result.exit_code == 2
    assert "bad.json: annotations[0]: annotation needs image_id and category_id" in result.output


def test_grabcut_backend_improves_boundaries(tmp_path, synth_sample):
    """The weight-free backend must bring coarse masks closer to the exact ones (Boundary IoU)."""
    from rem_refine.demo import mean_boundary_iou

    out = tmp_path / "grabcut.json"
    args = [
        "--input-json",
        str(synth_sample.coarse),
        "--image-dir",
        str(synth_sample.image_dir),
        "-o",
        str(out),
        "--backend",
        "grabcut",
        "--no-progress",
    ]
    result = _run(args)
    assert result.exit_code == 0, result.output
    before, n = mean_boundary_iou(synth_sample.exact, synth_sample.coarse)
    after, m = mean_boundary_iou(synth_sample.exact, out)
    assert n == m > 5
    assert after > before + 0.05, (before, after)
    again = tmp_path / "again.json"
    assert _run([*args[:4], "-o", str(again), *args[6:]]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()  # GrabCut's RNG is seeded per annotation


@pytest.mark.parametrize("flag", ["--reference"])
def test_reference_switch_sets_all_three_behaviours(tmp_path, synth_sample, tiny_checkpoint, flag):
    inp = subset(synth_sample.coarse, tmp_path / "in.json", 1)
    out = tmp_path / "out.json"
    args = [
        *_base_args(inp, out, synth_sample.image_dir, tiny_checkpoint),
        flag,
        "--num-extra-points",
        "0",
        "--num-trials",
        "1",
    ]
    assert _run(args).exit_code == 0
    fingerprint = orjson.loads((tmp_path / "out.manifest.json").read_bytes())["fingerprint"]
    assert fingerprint["fallback_scope"] == "instance"
    assert fingerprint["box_clamp"] == "canvas" and fingerprint["on_empty"] == "write-empty"
