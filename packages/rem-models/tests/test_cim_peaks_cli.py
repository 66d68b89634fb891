"""`rem cim prm-train` -> `rem cim peaks` -> `rem cim train --peaks` through the real `rem`
group, and one-line errors (exit 2) for bad peak files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rem_core import masks as mask_ops
from rem_core.io import load_coco, read_json, save_json
from rem_core.schemas import PeakSet
from rem_core.synth import make_sample
from rem_models.cim.proposals_io import image_proposals, save_proposals
from rem_models.engine.metrics_log import read_metrics

torch.set_num_threads(1)


@pytest.fixture
def cli(rem_cli):
    return rem_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """5 synthetic images; proposals = the GT masks + the four image quadrants (so every peak
    pixel is covered by some proposal)."""
    root = tmp_path_factory.mktemp("peaks_cli")
    s = make_sample(
        root / "d", num_images=5, width=96, height=64, num_categories=3, image_format="png", seed=2
    )
    coco = load_coco(s.exact)
    records = []
    for image_id, info in sorted(coco.imgs.items()):
        h, w = info["height"], info["width"]
        masks = [
            mask_ops.decode(mask_ops.to_rle(a["segmentation"], h, w)) > 0
            for a in coco.img_to_anns.get(image_id, [])
        ]
        for y0, x0 in ((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)):
            quadrant = np.zeros((h, w), dtype=bool)
            quadrant[y0 : y0 + h // 2, x0 : x0 + w // 2] = True
            masks.append(quadrant)
        records.append(image_proposals(image_id, np.stack(masks)))
    save_proposals(root / "props.json", records, "gt+quadrants")
    return s, root / "props.json"


def test_prm_peaks_then_cim_training_uses_the_pcl_term(cli, data, tmp_path):
    s, props = data
    prm, peaks, ckpt = tmp_path / "prm.safetensors", tmp_path / "peaks.json", tmp_path / "c.st"
    r = cli(
        "cim",
        "prm-train",
        s.exact,
        s.image_dir,
        prm,
        "--model",
        "prm_test",
        "--iterations",
        3,
        "--batch-size",
        2,
        "--seed",
        1,
    )
    assert r.exit_code == 0, r.output
    assert "trained PRM 3 iterations" in r.output
    r = cli("cim", "peaks", prm, s.exact, s.image_dir, peaks, "--threshold", 10)
    assert r.exit_code == 0, r.output
    peak_set = PeakSet.model_validate(read_json(peaks))
    assert peak_set.frame_size == 64 and len(peak_set.images) == 5
    coco = load_coco(s.exact)
    for record in peak_set.images:
        labelled = {a["category_id"] for a in coco.img_to_anns.get(record.image_id, [])}
        # Every labelled class has at least one peak; none for absent classes; ascending scores.
        assert {p.category_id for p in record.peaks} == labelled
        assert [p.score for p in record.peaks] == sorted(p.score for p in record.peaks)
        for p in record.peaks:
            assert (p.x, p.y) == (int(p.col * 96 / 64), int(p.row * 64 / 64))
    r = cli(
        "cim",
        "train",
        s.exact,
        props,
        s.image_dir,
        ckpt,
        "--model",
        "cim_test",
        "--iterations",
        6,
        "--step",
        4,
        "--scales",
        "",
        "--peaks",
        peaks,
        "--checkpoint-every",
        3,
    )
    assert r.exit_code == 0, r.output
    records = read_metrics(tmp_path / "c.run" / "metrics.jsonl")
    assert [m["step"] for m in records] == [6]  # log_every 20: only the final record
    assert records[0]["loss_pcl"] > 0
    snaps = sorted(p.name for p in (tmp_path / "c.run" / "checkpoints").iterdir())
    assert snaps == ["snapshot_00000003.pt", "snapshot_00000006.pt"]


def _peak_file(path, **peak):
    base = {"x": 3, "y": 2, "category_id": 1, "score": 12.0} | peak
    image = {"image_id": 1, "height": 64, "width": 96, "peaks": [base]}
    save_json(path, {"version": 1, "images": [image]})
    return path


@pytest.mark.parametrize(
    ("peak", "message"),
    [
        (
            {"category_id": 99},
            "images[0].peaks[0].category_id: category_id 99 is not a category of the GT file",
        ),
        ({"score": None}, "images[0].peaks[0].score: Input should be a valid number"),
        ({"x": 96}, "images[0]: Value error, peaks[0] at (x=96, y=2) lies outside the 96x64"),
    ],
)
def test_bad_peak_files_exit_2_with_one_line(cli, data, tmp_path, peak, message):
    s, props = data
    bad = _peak_file(tmp_path / "bad.json", **peak)
    r = cli(
        "cim",
        "train",
        s.exact,
        props,
        s.image_dir,
        tmp_path / "c.st",
        "--model",
        "cim_test",
        "--iterations",
        1,
        "--peaks",
        bad,
    )
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"error: {bad}: {message}"), r.output
    assert len(r.output.strip().splitlines()) == 1


def test_prm_command_errors_exit_2_with_one_line(cli, data, tmp_path):
    s, _ = data
    weights = tmp_path / "w.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    out = tmp_path / "prm.safetensors"
    r = cli("cim", "prm-train", s.exact, s.image_dir, out, "--model", "prm_test", "--init", weights)
    assert r.exit_code == 2
    assert (
        r.output == "error: --init: --init loads ResNet-50 weights; this PRM has another backbone\n"
    )
    r = cli("cim", "prm-train", s.exact, s.image_dir, out, "--model", "cim_test")
    assert (
        r.exit_code == 2
        and r.output == "error: --model: cim_test is not a PRM model (try prm_r50)\n"
    )
