"""SAM variants and checkpoints: MobileSAM's TinyViT loads the official key table strictly,
checkpoints load only through weights_only, and mismatches are user errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest
import torch

from rem_core.errors import RemError
from rem_refine.sam.models import SAM_BUILDERS, canonical_arch, load_sam, read_state_dict
from rem_refine.sam.tiny_vit import TinyViT, relative_offset_index

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
TABLE = SHARED / "data" / "mobile_sam_state_dict_shapes_DERIVED.json"


def _table() -> dict[str, list[int]]:
    if not TABLE.is_file():
        pytest.skip(f"../shared test data not found: {TABLE}")
    return orjson.loads(TABLE.read_bytes())


def test_mobile_sam_loads_the_official_key_table_strictly(tmp_path):
    table = _table()
    assert len(table) == 439
    state = {
        k: torch.zeros(shape, dtype=torch.long if k.endswith("num_batches_tracked") else None)
        for k, shape in table.items()
    }
    path = tmp_path / "mobile_sam.pt"
    torch.save(state, path)
    model = load_sam("mobile_sam", path)  # strict: raises on any missing or unexpected key
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == table
    n_params = sum(p.numel() for p in model.parameters())
    n_buffers = sum(b.numel() for b in model.state_dict().values()) - n_params
    n_table = sum(int(torch.tensor(shape).prod()) for shape in table.values())
    assert n_params + n_buffers == n_table
    assert round(n_table / 1e6, 2) == 10.14  # data/README.md: 10.14M values in 439 tensors


def test_relative_offset_index_matches_first_appearance_order():
    for window in (2, 3, 7):
        points = list(itertools.product(range(window), range(window)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                offsets.setdefault(off, len(offsets))
                idxs.append(offsets[off])
        want = torch.tensor(idxs).view(len(points), len(points))
        assert torch.equal(relative_offset_index(window), want)
        assert len(offsets) == window * window


def test_tiny_vit_forward_shapes_and_batch_independence():
    torch.manual_seed(0)
    enc = TinyViT(
        img_size=1024,
        embed_dims=(8, 16, 16, 32),
        depths=(1, 1, 1, 1),
        num_heads=(1, 2, 2, 2),
        window_sizes=(7, 7, 14, 7),
        num_classes=10,
        out_chans=32,
    ).eval()
    x = torch.randn(2, 3, 1024, 1024)
    with torch.inference_mode():
        both = enc(x)
        one = enc(x[1:])
    assert both.shape == (2, 32, 64, 64)
    torch.testing.assert_close(both[1:], one, rtol=1e-4, atol=1e-4)


def test_checkpoints_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(1), "payload": Path("x")}, path)
    with pytest.raises(RemError, match="cannot read checkpoint safely"):
        read_state_dict(path)
    with pytest.raises(RemError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")


def test_mismatched_checkpoints_are_user_errors(tmp_path, tiny_checkpoint):
    with pytest.raises(RemError, match="does not match architecture tiny_vit_t"):
        load_sam("tiny_vit_t", tiny_checkpoint)
    state = torch.load(tiny_checkpoint, weights_only=True)
    state.pop("mask_decoder.iou_token.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save({"model": state}, path)  # a wrapped state dict is unwrapped
    with pytest.raises(RemError, match=r"1 missing keys .*1 unexpected keys"):
        load_sam("tiny", path)
    with pytest.raises(RemError, match="unknown SAM architecture"):
        canonical_arch("vit_x")
    assert canonical_arch("mobile_sam") == "vit_t" and "vit_h" in SAM_BUILDERS
