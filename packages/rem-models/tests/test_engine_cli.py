"""`rem train`, `rem predict` and `rem convert-checkpoint` through the real `rem` click group."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from pycocotools.coco import COCO
from toy_detectors import FixedPredictor, TinyMaskRCNN, TinyMaskRCNNConfig

from rem_core import masks as mask_ops
from rem_core.cli.main import cli
from rem_core.schemas import Results
from rem_core.synth import make_sample
from rem_models import ModelConfig, register_model
from rem_models.checkpoints import build_from_checkpoint, save_checkpoint_safetensors
from rem_models.engine.categories import CATEGORIES_KEY
from rem_models.engine.metrics_log import read_metrics


def _rem(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _last_line(result) -> str:
    return result.output.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli_sample")
    return make_sample(
        root, num_images=6, width=64, height=64, num_categories=3, image_format="png"
    )


@pytest.fixture
def tiny(empty_registry):
    @register_model("tiny_maskrcnn", train_defaults={"optimizer": "sgd", "lr": 0.02})
    def tiny_maskrcnn(config: TinyMaskRCNNConfig) -> torch.nn.Module:
        """torchvision Mask R-CNN, tiny, for tests."""
        return TinyMaskRCNN(config)

    return empty_registry


QUICK = [
    "steps=3",
    "batch_size=2",
    "log_every=1",
    "num_workers=0",
    "checkpoint_every=2",
    "augment.image_size=64",
    "model.image_size=64",
]


def _set(*items: str) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def test_train_then_predict(tiny, sample, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    result = _rem(
        "train",
        "tiny_maskrcnn",
        "--train-json",
        sample.exact,
        "--image-dir",
        sample.image_dir,
        "--eval-json",
        sample.exact,
        "--out",
        out,
        "--device",
        "cpu",
        *_set(*QUICK),
    )
    assert result.exit_code == 0, result.output
    assert "dropped 1 image(s) without usable instances" in result.output
    run = json.loads((out / "run.json").read_text())
    # the family recipe, then --set; num_classes follows the file's 3 categories
    assert run["train_config"]["optimizer"] == "sgd" and run["train_config"]["lr"] == 0.02
    assert run["train_config"]["steps"] == 3 and run["model_config"]["num_classes"] == 3
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 3]
    assert set(records[-1]["eval"]) == {"bbox", "segm"}
    assert 0.0 <= records[-1]["eval"]["segm"]["AP"] <= 1.0
    assert {"loss_mask", "loss_classifier", "lr", "loss"} <= set(records[0])

    # predict over the images of the COCO file
    results_path = tmp_path / "results.json"
    result = _rem(
        "predict",
        "tiny_maskrcnn",
        "--checkpoint",
        out / "model_final.safetensors",
        "--images",
        sample.exact,
        "--image-dir",
        sample.image_dir,
        "--out",
        results_path,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    detections = json.loads(results_path.read_text())
    assert detections, "an untrained model with threshold 0 still returns detections"
    Results.model_validate(detections)
    assert {d["category_id"] for d in detections} <= {1, 2, 3}
    for det in detections[:20]:
        assert det["segmentation"]["size"] == [64, 64]
        assert isinstance(det["segmentation"]["counts"], str)
    # pycocotools accepts the file against the ground truth
    gt = COCO(str(sample.exact))
    assert len(gt.loadRes(str(results_path)).anns) == len(detections)

    # a training snapshot serves as a checkpoint too (config and categories inside)
    from_snapshot = tmp_path / "from_snapshot.json"
    result = _rem(
        "predict",
        "tiny_maskrcnn",
        "--checkpoint",
        out / "checkpoints" / "snapshot_00000003.pt",
        "--images",
        sample.exact,
        "--image-dir",
        sample.image_dir,
        "--out",
        from_snapshot,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(from_snapshot.read_text()) == detections

    # resume with more steps continues from the final snapshot
    result = _rem(
        "train",
        "tiny_maskrcnn",
        "--train-json",
        sample.exact,
        "--image-dir",
        sample.image_dir,
        "--out",
        out,
        "--device",
        "cpu",
        "--resume",
        "--set",
        "steps=4",
    )
    assert result.exit_code == 0, result.output
    assert "(step 3)" in result.output
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if "eval" not in r][-1] == 4


def test_train_user_errors(tiny, sample, tmp_path: Path) -> None:
    base = [
        "train",
        "tiny_maskrcnn",
        "--train-json",
        sample.exact,
        "--image-dir",
        sample.image_dir,
        "--out",
        tmp_path,
    ]
    result = _rem(*base, "--set", "stepz=3")
    assert result.exit_code == 2
    assert _last_line(result).startswith("error: --set: unknown config key 'stepz': no field")
    result = _rem(*base, "--set", "model.num_classes=5")
    assert result.exit_code == 2
    assert _last_line(result) == (
        "error: --set: model.num_classes=5 but the training file has 3 categories"
    )
    result = _rem("train", "tiny_maskrcnn", "--image-dir", sample.image_dir)
    assert result.exit_code == 2
    assert _last_line(result) == "error: rem train: give --train-json (an instances file) or --refs"
    result = _rem(*base, "--set", "batch_size=3", "--set", "grad_accum=2")
    assert result.exit_code == 2 and "not a multiple of grad_accum" in _last_line(result)
    result = _rem(
        "train", "tiny_maskrcnn", "--train-json", tmp_path / "nope.json", "--image-dir", tmp_path
    )
    assert result.exit_code == 2 and _last_line(result).endswith("nope.json: file not found")


# ------------------------------------------------------------------------------------------
# predict: exact conversion of known outputs


class FixedConfig(ModelConfig):
    num_classes: int = 3


H, W = 8, 12


def _fixed_detections() -> dict[str, torch.Tensor]:
    masks = torch.zeros(2, H, W)
    masks[0, 2:6, 1:5] = 0.7
    masks[1, 0:3, 6:12] = 0.9
    masks[1, 0, 6] = 0.4  # below 0.5: background
    return {
        "boxes": torch.tensor([[1.0, 2.0, 5.0, 8.0], [6.5, 0.0, 12.0, 3.0]]),
        "scores": torch.tensor([0.9, 0.2]),
        "labels": torch.tensor([2, 0]),
        "masks": masks,
    }


@pytest.fixture
def fixed(empty_registry, tmp_path: Path) -> Path:
    @register_model("fixed")
    def fixed_model(config: FixedConfig) -> torch.nn.Module:
        """Returns the same two detections for every image."""
        return FixedPredictor(_fixed_detections())

    images = tmp_path / "images"
    images.mkdir()
    for name in ("b.png", "a.png"):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(images / name)
    ckpt = tmp_path / "fixed.safetensors"
    # Stored label order is kept as is: label 0 -> id 7, 1 -> 3, 2 -> 11.
    categories = [{"id": 7, "name": "a"}, {"id": 3, "name": "b"}, {"id": 11, "name": "c"}]
    save_checkpoint_safetensors(
        ckpt,
        {"dummy": torch.zeros(1)},
        FixedConfig(),
        arch="fixed",
        metadata={CATEGORIES_KEY: json.dumps(categories)},
    )
    return ckpt


def test_predict_writes_exact_coco_results(fixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "res.json"
    result = _rem(
        "predict",
        "fixed",
        "--checkpoint",
        fixed,
        "--images",
        tmp_path / "images",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    detections = json.loads(out.read_text())
    Results.model_validate(detections)
    first = np.zeros((H, W), np.uint8)
    first[2:6, 1:5] = 1
    second = np.zeros((H, W), np.uint8)
    second[0:3, 6:12] = 1
    second[0, 6] = 0
    expected = []
    for image_id in (1, 2):  # a.png, b.png in name order
        expected += [
            {
                "image_id": image_id,
                "category_id": 11,
                "bbox": [1.0, 2.0, 4.0, 6.0],
                "score": pytest.approx(0.9),
                "segmentation": mask_ops.encode(first),
            },
            {
                "image_id": image_id,
                "category_id": 7,
                "bbox": [6.5, 0.0, 5.5, 3.0],
                "score": pytest.approx(0.2),
                "segmentation": mask_ops.encode(second),
            },
        ]
    assert detections == expected
    listing = json.loads((tmp_path / "out" / "res.images.json").read_text())
    assert listing["images"] == [
        {"id": 1, "file_name": "a.png", "height": H, "width": W},
        {"id": 2, "file_name": "b.png", "height": H, "width": W},
    ]
    assert [c["id"] for c in listing["categories"]] == [7, 3, 11]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # atomic writes

    result = _rem(
        "predict",
        "fixed",
        "--checkpoint",
        fixed,
        "--images",
        tmp_path / "images",
        "--out",
        out,
        "--score-threshold",
        "0.5",
    )
    assert [d["category_id"] for d in json.loads(out.read_text())] == [11, 11]


def test_predict_user_errors(fixed: Path, tmp_path: Path, tiny) -> None:
    del tiny
    result = _rem(
        "predict",
        "tiny_maskrcnn",
        "--checkpoint",
        fixed,
        "--images",
        tmp_path / "images",
        "--out",
        tmp_path / "r.json",
    )
    assert result.exit_code == 2
    assert (
        _last_line(result) == f"error: {fixed}: checkpoint is a 'fixed' model, not 'tiny_maskrcnn'"
    )
    result = _rem(
        "predict",
        "fixed",
        "--checkpoint",
        fixed,
        "--images",
        tmp_path / "missing",
        "--out",
        tmp_path / "r.json",
    )
    assert result.exit_code == 2
    assert _last_line(result) == f"error: {tmp_path / 'missing'}: no such file or folder"


# ------------------------------------------------------------------------------------------
# convert-checkpoint


def test_convert_checkpoint_with_family_converter(empty_registry, toy, tmp_path: Path) -> None:
    def convert(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
        return {
            "fc1.weight": state["layer1.w"],
            "fc1.bias": state["layer1.b"],
            "fc2.weight": state["layer2.w"].T,
            "fc2.bias": state["layer2.b"],
        }

    @register_model("mlp-conv", config=toy.MLPConfig(), converter=convert)
    def mlp_conv(config) -> torch.nn.Module:
        """MLP with a converter."""
        return toy.MLP(config)

    @register_model("mlp-bare", config=toy.MLPConfig())
    def mlp_bare(config) -> torch.nn.Module:
        """MLP without a converter."""
        return toy.MLP(config)

    rng = np.random.default_rng(0)
    official = {
        "layer1.w": rng.standard_normal((16, 8)).astype(np.float32),
        "layer1.b": rng.standard_normal(16).astype(np.float32),
        "layer2.w": rng.standard_normal((16, 3)).astype(np.float32),  # stored transposed
        "layer2.b": rng.standard_normal(3).astype(np.float32),
    }
    source = tmp_path / "model_final_abc.pkl"
    source.write_bytes(pickle.dumps({"model": official, "__author__": "someone"}, protocol=2))
    dest = tmp_path / "mlp.safetensors"

    result = _rem("convert-checkpoint", "mlp-conv", source, dest)
    assert result.exit_code == 0, result.output
    model = build_from_checkpoint(dest)
    x = torch.from_numpy(rng.standard_normal((5, 8)).astype(np.float32))
    by_hand = np.maximum(x.numpy() @ official["layer1.w"].T + official["layer1.b"], 0)
    by_hand = by_hand @ official["layer2.w"] + official["layer2.b"]
    np.testing.assert_allclose(model(x).detach().numpy(), by_hand, rtol=1e-5, atol=1e-5)

    # a converter may bring its own file reader (for files the generic loader refuses)
    def read_file(path, file_format):
        assert (Path(path), file_format) == (source, None)
        return {k: torch.from_numpy(v) for k, v in official.items()}

    calls = []
    convert.read_file = lambda path, fmt: calls.append(path) or read_file(path, fmt)
    result = _rem("convert-checkpoint", "mlp-conv", source, tmp_path / "read.safetensors")
    assert result.exit_code == 0, result.output
    assert calls == [source]
    del convert.read_file

    result = _rem("convert-checkpoint", "mlp-bare", source, dest)
    assert result.exit_code == 2
    assert _last_line(result) == "error: model 'mlp-bare' has no checkpoint converter"

    result = _rem("convert-checkpoint", "mlp-conv", source, dest, "--set", "hidden=4")
    assert result.exit_code == 2
    assert _last_line(result).startswith(
        f"error: {source}: converted weights do not fit 'mlp-conv': "
    )


def test_initial_weights_skip_reshaped_heads(tmp_path: Path) -> None:
    """Fine-tuning from a 5-class checkpoint into a 3-class model keeps all but the class heads."""
    from rich.console import Console

    from rem_models.engine.run_train import load_initial_weights

    torch.manual_seed(0)
    source = TinyMaskRCNN(TinyMaskRCNNConfig(num_classes=5))
    path = tmp_path / "five.safetensors"
    save_checkpoint_safetensors(path, source.state_dict(), TinyMaskRCNNConfig(num_classes=5))
    target = TinyMaskRCNN(TinyMaskRCNNConfig(num_classes=3))
    console = Console(record=True, width=300)
    load_initial_weights(target, path, console)
    reshaped = {
        k for k, v in target.state_dict().items() if v.shape != source.state_dict()[k].shape
    }
    assert reshaped == {
        "net.roi_heads.box_predictor.cls_score.weight",
        "net.roi_heads.box_predictor.cls_score.bias",
        "net.roi_heads.box_predictor.bbox_pred.weight",
        "net.roi_heads.box_predictor.bbox_pred.bias",
        "net.roi_heads.mask_predictor.mask_fcn_logits.weight",
        "net.roi_heads.mask_predictor.mask_fcn_logits.bias",
    }
    for name, tensor in target.state_dict().items():
        if name not in reshaped:
            assert torch.equal(tensor, source.state_dict()[name]), name
    total = len(source.state_dict())
    assert (
        f"{total - 6} tensors loaded, 6 skipped (shape differs, e.g. "
        "net.roi_heads.box_predictor.bbox_pred.bias), 0 missing, 0 unexpected"
    ) in console.export_text()
