"""Inference plumbing: test-time resize for fixed-square models and results at original size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from rem_core import masks as mask_ops
from rem_models.engine.categories import CategoryMap
from rem_models.engine.dataset import ImageFiles
from rem_models.engine.inference import binary_masks, predict_dataset, resize_long_side


def test_resize_long_side_matches_pil_with_rounding_half_up() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)  # H=3, W=5
    image = torch.from_numpy(pixels).permute(2, 0, 1).float()
    out = resize_long_side(image, 8)  # scale 1.6: H 4.8 -> int(5.3) = 5, W 8
    assert out.shape == (3, 5, 8)
    expected = np.array(Image.fromarray(pixels).resize((8, 5), Image.Resampling.BILINEAR))
    assert torch.equal(out, torch.from_numpy(expected).permute(2, 0, 1).float())
    # 2.5 rounds up (detectron2 adds 0.5 and truncates; Python's round would give 2)
    assert resize_long_side(torch.zeros(3, 5, 10), 5).shape == (3, 3, 5)


class SquarePadModel(nn.Module):
    """Records what it is fed; answers one full-width box and a mask of the left half."""

    square_pad = 8

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[tuple[int, ...], tuple[int, int]]] = []

    def forward(self, images, targets=None, output_sizes=None):
        outputs = []
        for image, (h, w) in zip(images, output_sizes):
            self.seen.append((tuple(image.shape), (h, w)))
            mask = torch.zeros(1, h, w, dtype=torch.bool)
            mask[:, :, : w // 2] = True
            outputs.append(
                {
                    "boxes": torch.tensor([[0.0, 0.0, float(w), float(h)]]),
                    "scores": torch.tensor([0.5]),
                    "labels": torch.tensor([0]),
                    "masks": mask,
                }
            )
        return outputs


def test_fixed_square_models_get_resized_inputs_and_original_size_results(
    tmp_path: Path,
) -> None:
    for name, (h, w) in {"a.png": (4, 10), "b.png": (12, 6)}.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / name)
    model = SquarePadModel()
    cats = CategoryMap.from_categories([{"id": 4, "name": "x"}])
    results = predict_dataset(model, ImageFiles(tmp_path), cats, torch.device("cpu"), batch_size=2)
    assert model.seen == [((3, 3, 8), (4, 10)), ((3, 8, 4), (12, 6))]
    assert [r["bbox"] for r in results] == [[0, 0, 10, 4], [0, 0, 6, 12]]
    assert [mask_ops.area(r["segmentation"]) for r in results] == [4 * 5, 12 * 3]
    assert [r["segmentation"]["size"] for r in results] == [[4, 10], [12, 6]]
    assert model.training  # restored after prediction


def test_binary_masks_accepts_model_formats() -> None:
    probs = torch.tensor([[[0.2, 0.6], [0.5, 0.9]]])
    assert binary_masks(probs, 2, 2).tolist() == [[[False, True], [False, True]]]
    assert binary_masks(probs[:, None], 2, 2).shape == (1, 2, 2)
    assert binary_masks(probs > 0.55, 2, 2).tolist() == [[[False, True], [False, True]]]
    try:
        binary_masks(probs, 3, 2)
    except ValueError as exc:
        assert "masks must be in the input image's pixel frame" in str(exc)
    else:
        raise AssertionError("a mask of the wrong size was accepted")
