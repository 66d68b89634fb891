"""Fixtures shared by the stage-1 tests: a small synthetic sample and a tiny random SAM."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # plain_refiner lives beside the tests


@pytest.fixture(scope="session")
def synth_sample(tmp_path_factory):
    """4 drawn images (one empty, one with a crowd region) with exact and coarse masks."""
    from rem_core.synth import make_sample

    return make_sample(tmp_path_factory.mktemp("synth") / "sample", num_images=4, seed=0)


@pytest.fixture(scope="session")
def portrait_sample(tmp_path_factory):
    """2 drawn portrait images (480 wide, 640 high), to mix image sizes in one batch."""
    from rem_core.synth import make_sample

    root = tmp_path_factory.mktemp("portrait") / "sample"
    return make_sample(root, num_images=2, seed=1, width=480, height=640)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A state dict of the random-weight ``tiny`` SAM, saved like an official checkpoint."""
    import torch

    from rem_refine.sam.models import build_tiny_test

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_sam.pth"
    torch.save(build_tiny_test().state_dict(), path)
    return path


def subset(src: Path, dst: Path, per_image: int) -> Path:
    """Copy a COCO file keeping the first ``per_image`` non-crowd annotations of each image, and
    every crowd one (fewer instances keep the CPU tests quick)."""
    data = orjson.loads(src.read_bytes())
    kept, seen = [], {}
    for ann in data["annotations"]:
        n = seen.get(ann["image_id"], 0)
        if ann.get("iscrowd"):
            kept.append(ann)
        elif n < per_image:
            kept.append(ann)
            seen[ann["image_id"]] = n + 1
    data["annotations"] = kept
    dst.write_bytes(orjson.dumps(data))
    return dst
