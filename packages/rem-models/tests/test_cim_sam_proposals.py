"""SAM "segment everything" proposals, with a tiny randomly initialised SAM (no weights here)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
sam_modeling = pytest.importorskip("segment_anything.modeling")

from segment_anything import SamAutomaticMaskGenerator  # noqa: E402

from rem_models.cim.proposals_io import image_proposals, proposal_masks  # noqa: E402
from rem_models.cim.sam_proposals import load_sam_weights, sam_everything  # noqa: E402


def _tiny_sam() -> sam_modeling.Sam:
    dim = 32
    return sam_modeling.Sam(
        image_encoder=sam_modeling.ImageEncoderViT(
            img_size=64,
            patch_size=16,
            embed_dim=dim,
            depth=1,
            num_heads=2,
            out_chans=dim,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=0,
        ),
        prompt_encoder=sam_modeling.PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(4, 4),
            input_image_size=(64, 64),
            mask_in_chans=4,
        ),
        mask_decoder=sam_modeling.MaskDecoder(
            transformer_dim=dim,
            transformer=sam_modeling.TwoWayTransformer(
                depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2
            ),
            iou_head_hidden_dim=32,
        ),
    ).eval()


def test_sam_everything_returns_the_generator_masks_sorted_by_predicted_iou(tmp_path):
    torch.manual_seed(0)
    sam = _tiny_sam()
    path = tmp_path / "tiny_sam.pth"
    torch.save(sam.state_dict(), path)
    torch.manual_seed(1)
    loaded = load_sam_weights(_tiny_sam(), path)
    image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    kwargs = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    masks, scores = sam_everything(image, loaded, **kwargs)
    reference = SamAutomaticMaskGenerator(sam, **kwargs).generate(image)
    assert len(masks) == len(reference) > 0
    assert masks.shape[1:] == (40, 56) and masks.dtype == bool
    assert np.all(np.diff(scores) <= 0)
    by_score = sorted(reference, key=lambda r: -r["predicted_iou"])
    for m, s, r in zip(masks, scores, by_score, strict=True):
        np.testing.assert_array_equal(m, r["segmentation"])
        assert s == pytest.approx(r["predicted_iou"])
    record = image_proposals(3, masks, scores)
    np.testing.assert_array_equal(proposal_masks(record), masks)
