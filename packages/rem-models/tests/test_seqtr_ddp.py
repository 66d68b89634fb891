"""Two gloo processes train SeqTR like one process accumulating the same micro-batches.

Each step's global batch (3 items here, so the pieces are uneven: 2 + 1) is cut into
``world_size x grad_accum`` micro-batches, each weighted by its share of the batch. SeqTR's
BatchNorm layers (the frozen DarkNet's too) run in train mode, so they normalise with the
statistics of whatever micro-batch they see: 2 processes therefore equal 1 process with
``grad_accum=2`` (same micro-batches), not 1 process with the whole batch at once, exactly as
SeqTR's own multi-GPU runs used per-GPU BatchNorm. Parameters, their EMA and the logged losses
must agree to float rounding. BatchNorm running statistics are not compared: under DDP they
are process 0's (broadcast before each forward), with accumulation every micro-batch updates
them. Dropout is 0 and contour shuffling off in the tiny model, so nothing is drawn per process.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rem_models.engine.metrics_log import read_metrics
from rem_models.engine.training_state import list_snapshots, load_snapshot
from rem_models.lavt.synthetic import make_referring_sample
from rem_models.registry import get_model

SETS = ("epochs=2", "batch_size=3", "lr=1e-3", "warmup_epochs=1", "ema=true")
# jitter kept above 1/2 scale: a one-item micro-batch needs > 1 value per BatchNorm channel
SETS += ("lsj=true", "scale_range=[0.8,1.4]")


def _run(refs: Path, images: Path, out: Path, accum: int) -> None:
    from rem_models.seqtr.train_run import train_referring_run

    torch.set_num_threads(1)
    train_referring_run(
        "seqtr_test_mask", refs, images, out, overrides=(*SETS, f"grad_accum={accum}")
    )


def _worker(rank: int, refs: Path, images: Path, out: Path, port: int) -> None:
    # What torchrun sets for each process; the run joins the gloo group from it.
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    _run(refs, images, out, accum=1)


def _last(out: Path) -> dict:
    return load_snapshot(list_snapshots(out)[-1][1])


def test_two_gloo_processes_match_one_accumulating_process(tmp_path: Path) -> None:
    data = make_referring_sample(tmp_path / "data", 4, size=48, seed=3)
    _run(data.refs, data.image_dir, tmp_path / "single", accum=2)
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ddp_out = tmp_path / "ddp"
    mp.spawn(_worker, args=(data.refs, data.image_dir, ddp_out, port), nprocs=2, join=True)

    single, ddp = _last(tmp_path / "single"), _last(ddp_out)
    assert single["step"] == ddp["step"] == 6 and ddp["world_size"] == 2
    assert len(ddp["rng"]) == 2  # both processes' random states are kept
    words = json.loads((ddp_out / "run.json").read_text())["vocabulary"]
    torch.manual_seed(0)  # the run's seed: its initial weights
    start = get_model("seqtr_test_mask", **{"language.vocab_size": len(words)})
    params = [n for n, p in start.named_parameters() if p.requires_grad]
    moved = 0
    for name in params:
        for part in ("model", "ema"):
            torch.testing.assert_close(ddp[part][name], single[part][name], rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(single["model"][name], start.state_dict()[name]))
    assert moved > len(params) // 2, "training barely moved the weights: the test would be blind"
    losses = [r["loss"] for r in read_metrics(tmp_path / "single" / "metrics.jsonl")]
    ddp_losses = [r["loss"] for r in read_metrics(ddp_out / "metrics.jsonl")]
    assert ddp_losses == pytest.approx(losses, rel=1e-5) and len(losses) == 6
    assert (ddp_out / "model_final.safetensors").is_file()
