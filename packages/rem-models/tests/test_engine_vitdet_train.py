"""End to end: `rem train vitdet_test` on synthetic shapes learns masks; `rem predict` scores them.

A tiny ViTDet (0.5 M parameters) trains for 200 steps on 24 synthetic 128x128 images and is
scored on 12 held-out images with pycocotools' COCOeval (an independent truth). The untrained
model scores about 0 mask AP; the trained one must be far above it. Takes about a minute on two
CPU cores; set REM_SKIP_TRAIN_TEST=1 to skip it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rem_core.cli.main import cli
from rem_core.schemas import Results
from rem_core.synth import make_sample
from rem_models import get_model, get_model_config, list_models
from rem_models.checkpoints import save_checkpoint_safetensors
from rem_models.engine.categories import CATEGORIES_KEY, CategoryMap
from rem_models.engine.metrics_log import read_metrics

pytestmark = pytest.mark.skipif(
    os.environ.get("REM_SKIP_TRAIN_TEST") == "1", reason="REM_SKIP_TRAIN_TEST=1"
)

# Fewer sampled anchors / ROIs than the COCO recipe: 128 px images hold a few objects each.
SPEED = [
    "model.roi_heads.batch_size_per_image=64",
    "model.rpn.batch_size_per_image=128",
    "model.rpn.pre_nms_topk_train=300",
    "model.rpn.post_nms_topk_train=100",
    "model.rpn.pre_nms_topk_test=300",
    "model.rpn.post_nms_topk_test=100",
]
RECIPE = [
    "steps=200",
    "batch_size=2",
    "lr=1e-3",
    "weight_decay=0.05",
    "schedule=cosine",
    "warmup_steps=20",
    "clip_grad_norm=5.0",
    "augment.kind=resize",
    "augment.image_size=128",
    "num_workers=1",
    "log_every=50",
    "checkpoint_every=100",
]


def _set(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def _mask_ap(gt_path: Path, results_path: Path) -> float:
    detections = json.loads(results_path.read_text())
    if not detections:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(detections), "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def _predict(checkpoint: Path, sample, out: Path) -> float:
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "vitdet_test",
            "--checkpoint",
            str(checkpoint),
            "--images",
            str(sample.exact),
            "--image-dir",
            str(sample.image_dir),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "4",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    Results.model_validate(json.loads(out.read_text()))
    return _mask_ap(sample.exact, out)


def test_tiny_vitdet_learns_masks(tmp_path: Path) -> None:
    if "vitdet_test" not in list_models():
        pytest.skip("vitdet_test is not registered")
    torch.set_num_threads(1)  # shared CPUs: more threads spin and slow each other down
    train = make_sample(
        tmp_path / "train",
        num_images=24,
        width=128,
        height=128,
        num_categories=3,
        image_format="png",
        seed=0,
    )
    held_out = make_sample(
        tmp_path / "eval",
        num_images=12,
        width=128,
        height=128,
        num_categories=3,
        image_format="png",
        seed=1,
    )

    # chance: the same architecture, untrained
    categories = CategoryMap.from_categories(json.loads(train.exact.read_text())["categories"])
    torch.manual_seed(0)
    config = get_model_config("vitdet_test", num_classes=3)
    untrained = tmp_path / "untrained.safetensors"
    save_checkpoint_safetensors(
        untrained,
        get_model("vitdet_test", config).state_dict(),
        config,
        arch="vitdet_test",
        metadata={CATEGORIES_KEY: categories.to_json()},
    )
    chance = _predict(untrained, held_out, tmp_path / "untrained.json")

    out = tmp_path / "run"
    start = time.perf_counter()
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "vitdet_test",
            "--train-json",
            str(train.exact),
            "--image-dir",
            str(train.image_dir),
            "--eval-json",
            str(held_out.exact),
            "--eval-image-dir",
            str(held_out.image_dir),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--seed",
            "0",
            *_set(SPEED + RECIPE),
        ],
        catch_exceptions=False,
    )
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output

    trained = _predict(out / "model_final.safetensors", held_out, tmp_path / "trained.json")
    logged = read_metrics(out / "metrics.jsonl")
    print(
        f"tiny ViTDet: mask AP {trained:.3f} (untrained {chance:.3f}), 200 steps, {seconds:.0f} s"
    )
    assert chance < 0.02
    assert trained > 0.08 and trained > chance + 0.06
    # the in-training evaluation saw the same model and the same images
    assert logged[-1]["step"] == 200
    assert logged[-1]["eval"]["segm"]["AP"] == pytest.approx(trained, abs=1e-9)
    losses = [r["loss"] for r in logged if "loss" in r]
    assert losses[-1] < losses[0]
