"""Snapshots of a CIM training run, so ``rem cim train --resume`` continues bit-identically.

A snapshot holds the model, the SGD state (momentum buffers), the iteration, the lr milestone,
the Python / NumPy / torch random states (rem's engine format:
:mod:`rem_models.engine.training_state`) and the state of the loop's own NumPy generator, which
draws the image, scale and flip of each iteration and the anti-noise resampling of pseudo-GTs.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console

from rem_models.engine import training_state as snapshots

if TYPE_CHECKING:
    from rem_models.cim.train import CimTrainSettings


@dataclass(frozen=True)
class CimRun:
    """Where a resumable run keeps ``checkpoints/snapshot_%08d.pt`` (every ``checkpoint_every``
    iterations and at the end, newest ``keep`` kept) and ``metrics.jsonl`` (mean losses every
    ``log_every`` iterations). ``resume`` continues from the newest snapshot in ``folder``;
    ``console`` shows a progress bar (plain lines when not a terminal)."""

    folder: Path
    checkpoint_every: int = 1000
    keep: int = 2
    log_every: int = 20
    resume: bool = False
    console: Console | None = None


def _settings_json(settings: CimTrainSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["scales"] = list(data["scales"])
    return data


def save_cim_snapshot(
    run: CimRun,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    settings: CimTrainSettings,
) -> Path:
    """Write the state after ``step`` iterations and prune old snapshots."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "lr_step": settings.step,
        "world_size": 1,
        "rng": [snapshots.rng_state()],
        "loop_rng": json.dumps(rng.bit_generator.state),
        "settings": json.dumps(_settings_json(settings)),
    }
    path = snapshots.save_snapshot(snapshots.snapshot_path(run.folder, step), state)
    snapshots.prune_snapshots(run.folder, run.keep)
    return path


def restore_cim_snapshot(
    run: CimRun,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    settings: CimTrainSettings,
) -> int:
    """Load the newest snapshot of ``run.folder`` into the objects; returns its iteration
    (0, with a note, when there is none). Changed settings other than ``iterations`` are
    reported: the run then cannot match an uninterrupted one."""
    found = snapshots.list_snapshots(run.folder)
    if not found:
        _say(run, f"no snapshot in {run.folder / 'checkpoints'}; starting at iteration 0")
        return 0
    step, path = found[-1]
    state = snapshots.load_snapshot(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    snapshots.set_rng_state(state["rng"][0])
    rng.bit_generator.state = json.loads(state["loop_rng"])
    saved = json.loads(state["settings"])
    now = _settings_json(settings)
    changed = sorted(k for k in now if k != "iterations" and saved.get(k) != now[k])
    if changed:
        _say(
            run,
            f"warning: resuming with changed {', '.join(changed)}; the run will not "
            "match an uninterrupted one",
            warn=True,
        )
    _say(run, f"resumed from {path} (iteration {step})")
    return int(step)


def start_fresh(run: CimRun) -> None:
    """Delete an earlier run's snapshots from ``run.folder`` (a fresh run replaces it, as it
    replaces the output checkpoint), so a later ``--resume`` cannot pick a stale one."""
    stale = snapshots.list_snapshots(run.folder)
    for _, path in stale:
        path.unlink()
    if stale:
        _say(run, f"removed {len(stale)} snapshot(s) of an earlier run in {run.folder}")


def _say(run: CimRun, text: str, warn: bool = False) -> None:
    if run.console is not None:
        run.console.print(text, markup=False)
    elif warn:
        warnings.warn(text, stacklevel=3)
