"""Resumable training snapshots: model, optimiser, scheduler, step and every RNG state.

A snapshot is a ``torch.save`` file written atomically (a crash mid-save leaves the previous
snapshot intact) and read back with ``weights_only=True``: RNG states are stored as tensors and
plain Python values, so loading one never runs code. The random state of every process is kept,
so a resumed multi-process run draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rem_core.atomic import atomic_open
from rem_core.errors import RemError
from rem_models.checkpoints import load_torch_file

SNAPSHOT_PATTERN = re.compile(r"^snapshot_(\d{8})\.pt$")


def snapshot_path(out_dir: Path, step: int) -> Path:
    """``OUT/checkpoints/snapshot_00001000.pt`` for the state after ``step`` optimiser steps."""
    return out_dir / "checkpoints" / f"snapshot_{step:08d}.pt"


def list_snapshots(out_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every snapshot under ``out_dir``, oldest first."""
    folder = out_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = SNAPSHOT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy, torch (and CUDA) random states, in weights-only types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_snapshot(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors and plain values) to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
    return path


def load_snapshot(path: Path) -> dict[str, Any]:
    """Read a snapshot written by :func:`save_snapshot` (weights-only, on the CPU)."""
    state = load_torch_file(path)
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise RemError("not a rem training snapshot (no 'model' and 'step')", path=path)
    return state


def prune_snapshots(out_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` snapshots."""
    for _, path in list_snapshots(out_dir)[:-keep]:
        path.unlink(missing_ok=True)


def open_run_folder(out: Path, arch: str, resume: bool) -> tuple[dict | None, Path | None]:
    """(the saved manifest, the newest snapshot) of a run to resume; (None, None) for a new one.

    A folder that already holds a run is refused without ``resume``, so a second run never
    overwrites the first one's snapshots.
    """
    from rem_models.engine.distributed import barrier

    manifest = out / "run.json"
    found = list_snapshots(out) if resume else []
    if resume and (not found or not manifest.is_file()):
        raise RemError("nothing to resume: no run.json and snapshot in the folder", path=out)
    if not resume and manifest.exists():
        raise RemError("the folder already holds a run; pass --resume or another folder", path=out)
    barrier()  # every process looked before the main one writes
    if not resume:
        return None, None
    saved = json.loads(manifest.read_text(encoding="utf-8"))
    if saved.get("arch") != arch:
        raise RemError(f"the folder holds a run of {saved.get('arch')!r}, not {arch!r}", path=out)
    return saved, found[-1][1]
