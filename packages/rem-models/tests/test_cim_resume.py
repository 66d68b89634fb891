"""CIM training interrupted and resumed from a snapshot ends bit-identical to an uninterrupted
run: weights, logged losses and metrics.jsonl (random scales, flips, anti-noise resampling, the
lr step and PCL clusters all in play)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rem_core import masks as mask_ops
from rem_core.io import load_coco
from rem_core.synth import make_sample
from rem_models import get_model
from rem_models.cim.dataset import category_order, load_samples
from rem_models.cim.proposals_io import image_proposals
from rem_models.cim.train import CimTrainSettings, train_cim
from rem_models.cim.train_state import CimRun
from rem_models.engine.metrics_log import read_metrics
from rem_models.engine.training_state import list_snapshots, load_snapshot

torch.set_num_threads(1)

SETTINGS = CimTrainSettings(iterations=6, step=4, lr=0.01, scales=(48, 64, 72), flip=True, seed=3)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    s = make_sample(
        root / "d", num_images=4, width=80, height=64, num_categories=3, image_format="png", seed=5
    )
    coco = load_coco(s.exact)
    cats = category_order(coco)
    proposals, peaks = {}, {}
    for image_id, info in coco.imgs.items():
        h, w = info["height"], info["width"]
        anns = coco.img_to_anns.get(image_id, [])
        masks = [mask_ops.decode(mask_ops.to_rle(a["segmentation"], h, w)) > 0 for a in anns]
        masks += [np.roll(m, 3, axis=1) for m in masks]  # shifted copies: imperfect proposals
        full = np.ones((h, w), dtype=bool)
        proposals[image_id] = image_proposals(image_id, np.stack([*masks, full]))
        # One point per instance at a pixel of its mask, as a peak file would give.
        peaks[image_id] = []
        for a, m in zip(anns, masks, strict=False):
            ys, xs = np.nonzero(m)
            peaks[image_id].append(
                (xs[len(xs) // 2], ys[len(ys) // 2], cats.index(a["category_id"]))
            )
    return load_samples(coco, s.image_dir, proposals, peaks=peaks)


def _model(seed: int):
    torch.manual_seed(seed)
    return get_model("cim_test")


class _Crash(Exception):
    pass


def test_interrupted_then_resumed_run_is_bit_identical(samples, tmp_path):
    assert any(s.clusters is not None and (s.clusters.labels > 0).any() for s in samples)
    whole = _model(0)
    full_history = train_cim(whole, samples, SETTINGS, run=CimRun(tmp_path / "a", 2, log_every=1))
    assert all(r["loss_pcl"] > 0 for r in full_history if "loss_pcl" in r)

    def crash(it, record):
        if it == 2:  # after iteration 3; the newest snapshot is from iteration 2
            raise _Crash

    run_b = CimRun(tmp_path / "b", checkpoint_every=2, log_every=1)
    with pytest.raises(_Crash):
        train_cim(_model(0), samples, SETTINGS, on_step=crash, run=run_b)
    assert [step for step, _ in list_snapshots(run_b.folder)] == [2]
    assert len(read_metrics(run_b.folder / "metrics.jsonl")) == 3

    # A differently initialised model: everything must come from the snapshot.
    resumed = _model(1)
    resumed_history = train_cim(
        resumed,
        samples,
        SETTINGS,
        run=CimRun(run_b.folder, checkpoint_every=2, log_every=1, resume=True),
    )
    assert resumed_history == full_history[2:]
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name

    def losses(folder):
        return [
            {k: v for k, v in r.items() if k != "seconds_per_step"}
            for r in read_metrics(folder / "metrics.jsonl")
        ]

    assert losses(run_b.folder) == losses(tmp_path / "a")
    assert [r["lr"] for r in read_metrics(run_b.folder / "metrics.jsonl")] == [0.01] * 4 + [
        0.001
    ] * 2
    snapshot = load_snapshot(list_snapshots(run_b.folder)[-1][1])
    assert snapshot["step"] == 6 and set(snapshot) >= {"optimizer", "rng", "loop_rng"}
