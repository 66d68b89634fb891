"""Two processes on gloo train exactly like one process on the same global batch.

The model's loss is a mean over images, so the gradient of a global batch of 4 is the same
whether one process sees all 4, one process accumulates two halves, or two processes see a half
each and DDP averages: final weights and last gradients must agree to float rounding.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console
from toy_detectors import FixedPredictor, MeanColourRegressor, RegressorConfig

from rem_core.synth import make_sample
from rem_models.engine import (
    AugmentConfig,
    CategoryMap,
    CocoInstances,
    ImageFiles,
    TrainConfig,
    Trainer,
    predict_dataset,
)
from rem_models.engine.distributed import DistInfo, current, init_distributed


def _config(grad_accum: int) -> TrainConfig:
    return TrainConfig(
        steps=3,
        batch_size=4,
        grad_accum=grad_accum,
        lr=0.05,
        warmup_steps=1,
        clip_grad_norm=100.0,
        num_workers=0,
        log_every=1,
        checkpoint_every=100,
        augment=AugmentConfig(kind="lsj", image_size=64, min_scale=0.5, max_scale=1.5),
    )


def _train(sample_dir: Path, out_dir: Path, grad_accum: int) -> dict[str, dict]:
    """Train from identical initial weights; return final weights and last gradients."""
    torch.set_num_threads(1)
    dataset = CocoInstances(
        sample_dir / "exact.json",
        sample_dir / "images",
        augment=_config(grad_accum).augment,
        seed=5,
    )
    torch.manual_seed(0)
    model = MeanColourRegressor(RegressorConfig())
    trainer = Trainer(
        model,
        dataset,
        _config(grad_accum),
        out_dir,
        seed=5,
        console=Console(quiet=True),
        dist_info=current(),
    )
    trainer.run()
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": {k: p.grad.detach().clone() for k, p in model.named_parameters()},
    }


def _predict(sample_dir: Path, info: DistInfo | None = None) -> list[dict]:
    """Results of a fixed predictor over every image (sharded over processes when several)."""
    model = FixedPredictor(
        {
            "boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]),
            "scores": torch.tensor([0.5]),
            "labels": torch.tensor([1]),
        }
    )
    images = ImageFiles(sample_dir / "images")
    cats = CategoryMap.from_categories([{"id": 3, "name": "a"}, {"id": 8, "name": "b"}])
    return predict_dataset(model, images, cats, torch.device("cpu"), dist_info=info)


def _worker(rank: int, sample_dir: Path, out_dir: Path, port: int) -> None:
    # What torchrun sets for each process; init_distributed joins the group from it.
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    info, device = init_distributed("cpu")
    assert (info.rank, info.world_size, device.type) == (rank, 2, "cpu")
    assert dist.get_backend() == "gloo"
    try:
        result = _train(sample_dir, out_dir, grad_accum=1)
        predictions = _predict(sample_dir, info)
        if rank == 0:
            torch.save(result, out_dir / "ddp_result.pt")
            (out_dir / "ddp_predictions.json").write_text(json.dumps(predictions))
        else:
            assert predictions == []  # everything is gathered on the main process
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp_sample")
    make_sample(root, num_images=7, width=64, height=64, num_categories=3, image_format="png")
    return root


def test_two_gloo_processes_match_one_process(sample_dir: Path, tmp_path: Path) -> None:
    reference = _train(sample_dir, tmp_path / "single", grad_accum=1)
    accumulated = _train(sample_dir, tmp_path / "accum", grad_accum=2)

    ddp_out = tmp_path / "ddp"
    ddp_out.mkdir()
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_worker, args=(sample_dir, ddp_out, port), nprocs=2, join=True)
    ddp = torch.load(ddp_out / "ddp_result.pt", weights_only=True)
    # prediction: each process took every other image; the main one got all, in order
    predictions = json.loads((ddp_out / "ddp_predictions.json").read_text())
    assert predictions == _predict(sample_dir)
    assert [p["image_id"] for p in predictions] == list(range(1, 8))

    moved = False
    for name, start in MeanColourRegressor(RegressorConfig()).state_dict().items():
        del start
        for other in (accumulated, ddp):
            torch.testing.assert_close(
                other["grads"].get(name), reference["grads"].get(name), rtol=1e-5, atol=1e-7
            )
            torch.testing.assert_close(
                other["weights"][name], reference["weights"][name], rtol=1e-5, atol=1e-7
            )
        moved |= bool(reference["grads"][name].abs().sum() > 0)
    assert moved, "the gradients are all zero: the test would not see a difference"


def test_metrics_and_snapshot_written_once(sample_dir: Path, tmp_path: Path) -> None:
    _train(sample_dir, tmp_path, grad_accum=2)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in lines] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["snapshot_00000003.pt"]
