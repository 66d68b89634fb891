"""Shared fixtures: the real COCO sample in ../shared and a small synthetic sample."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
COCO30 = SHARED / "data" / "coco-val2017-30"


@pytest.fixture(scope="session")
def coco30() -> Path:
    """Folder with instances_val2017_30.json and val2017/ (30 real COCO images)."""
    if not (COCO30 / "instances_val2017_30.json").is_file():
        pytest.skip(f"../shared test data not found: {COCO30}")
    return COCO30


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """A 12-image synthetic sample (exact, coarse, predictions), made once per session."""
    from rem_core.synth import make_sample

    return make_sample(tmp_path_factory.mktemp("synth"), num_images=12, seed=3)
