"""An interrupted run resumed from its snapshot ends with the same weights as an uninterrupted one.

torchvision's Mask R-CNN samples anchors and ROIs with torch's RNG and LSJ draws per-sample
crops, so this holds only if the snapshot restores the model, optimiser, scheduler, step and
random state, and the data stream restarts at the right batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.console import Console
from toy_detectors import TinyMaskRCNN, TinyMaskRCNNConfig

from rem_core.synth import make_sample
from rem_models.engine import AugmentConfig, CocoInstances, TrainConfig, Trainer
from rem_models.engine.metrics_log import read_metrics
from rem_models.engine.training_state import list_snapshots, load_snapshot


class Interrupted(Exception):
    pass


class StopAtStep(torch.utils.data.Dataset):
    """Wraps a dataset and raises when a sample of ``step`` is requested (a crash mid-run)."""

    def __init__(self, inner: CocoInstances, step: int) -> None:
        self.inner, self.step = inner, step

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, key):
        if key[1] == self.step:
            raise Interrupted(f"stopped at step {self.step}")
        return self.inner[key]


CFG = TrainConfig(
    steps=5,
    batch_size=2,
    grad_accum=2,
    lr=2e-3,
    warmup_steps=2,
    milestones=[3],
    checkpoint_every=2,
    log_every=1,
    num_workers=0,
    keep_checkpoints=5,
    augment=AugmentConfig(kind="lsj", image_size=64, min_scale=0.5, max_scale=1.5),
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> CocoInstances:
    root = tmp_path_factory.mktemp("resume_sample")
    make_sample(root, num_images=6, width=64, height=64, num_categories=3, image_format="png")
    return CocoInstances(root / "exact.json", root / "images", augment=CFG.augment, seed=11)


def _trainer(model: torch.nn.Module, data, out: Path) -> Trainer:
    quiet = Console(quiet=True)
    return Trainer(model, data, CFG, out, seed=11, console=quiet)


def _model(seed: int) -> TinyMaskRCNN:
    torch.manual_seed(seed)
    return TinyMaskRCNN(TinyMaskRCNNConfig(image_size=64))


def test_resume_reproduces_the_uninterrupted_run(dataset: CocoInstances, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    straight = _model(0)
    _trainer(straight, dataset, tmp_path / "straight").run()

    out = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        _trainer(_model(0), StopAtStep(dataset, 3), out).run()
    assert [s for s, _ in list_snapshots(out)] == [2]
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]

    resumed = _model(123)  # different initial weights: everything must come from the snapshot
    result = _trainer(resumed, dataset, out).run(resume=True)
    assert result.start_step == 2 and result.steps == 5

    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    # the step-3 record of the crashed run was replaced, not duplicated
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    straight_records = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    for a, b in zip(records, straight_records):
        assert a["loss"] == b["loss"] and a["lr"] == b["lr"]
    assert [s for s, _ in list_snapshots(out)] == [2, 4, 5]


def test_snapshot_is_weights_only_and_complete(dataset: CocoInstances, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = CFG.model_copy(update={"steps": 2})
    quiet = Console(quiet=True)
    Trainer(_model(0), dataset, cfg, tmp_path, seed=1, console=quiet, meta={"arch": "x"}).run()
    ((step, path),) = list_snapshots(tmp_path)
    state = load_snapshot(path)  # torch.load(weights_only=True) inside
    assert step == state["step"] == 2
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "train_config", "meta"}
    assert state["scheduler"]["last_epoch"] == 2
    assert len(state["rng"]) == 1 and set(state["rng"][0]) >= {"python", "numpy", "torch"}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files
