"""Two processes on gloo train exactly like one process on the same global batch.

The model's loss is a mean over images, so the gradient of a global batch of 4 is the same
whether one process sees all 4, one process accumulates two halves, or two processes see a half
each and DDP averages: final weights and last gradients must agree to float rounding.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console
from toy_detectors import MeanColourRegressor, RegressorConfig

from rem_core.synth import make_sample
from rem_models.engine import AugmentConfig, CocoInstances, TrainConfig, Trainer
from rem_models.engine.distributed import current


def _config(grad_accum: int) -> TrainConfig:
    return TrainConfig(
        steps=3, batch_size=4, grad_accum=grad_accum, lr=0.05, warmup_steps=1,
        clip_grad_norm=100.0, num_workers=0, log_every=1, checkpoint_every=100,
        augment=AugmentConfig(kind="lsj", image_size=64, min_scale=0.5, max_scale=1.5),
    )  # fmt: skip


def _train(sample_dir: Path, out_dir: Path, grad_accum: int) -> dict[str, dict]:
    """Train from identical initial weights; return final weights and last gradients."""
    torch.set_num_threads(1)
    dataset = CocoInstances(
        sample_dir / "exact.json", sample_dir / "images",
        augment=_config(grad_accum).augment, seed=5,
    )  # fmt: skip
    torch.manual_seed(0)
    model = MeanColourRegressor(RegressorConfig())
    trainer = Trainer(
        model, dataset, _config(grad_accum), out_dir, seed=5,
        console=Console(file=open(os.devnull, "w")), dist_info=current(),  # noqa: SIM115
    )  # fmt: skip
    trainer.run()
    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": {k: p.grad.detach().clone() for k, p in model.named_parameters()},
    }


def _worker(rank: int, sample_dir: Path, out_dir: Path, rendezvous: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2
    )
    try:
        result = _train(sample_dir, out_dir, grad_accum=1)
        if rank == 0:
            torch.save(result, out_dir / "ddp_result.pt")
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
    mp.spawn(_worker, args=(sample_dir, ddp_out, tmp_path / "rdzv"), nprocs=2, join=True)
    ddp = torch.load(ddp_out / "ddp_result.pt", weights_only=True)

    moved = False
    for name, start in MeanColourRegressor(RegressorConfig()).state_dict().items():
        del start
        for other in (accumulated, ddp):
            torch.testing.assert_close(other["grads"].get(name), reference["grads"].get(name),
                                       rtol=1e-5, atol=1e-7)  # fmt: skip
            torch.testing.assert_close(other["weights"][name], reference["weights"][name],
                                       rtol=1e-5, atol=1e-7)  # fmt: skip
        moved |= bool(reference["grads"][name].abs().sum() > 0)
    assert moved, "the gradients are all zero: the test would not see a difference"


def test_metrics_and_snapshot_written_once(sample_dir: Path, tmp_path: Path) -> None:
    _train(sample_dir, tmp_path, grad_accum=2)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in lines] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "snapshot_00000003.pt"
    ]
