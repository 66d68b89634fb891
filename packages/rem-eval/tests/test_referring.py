"""Referring metrics: hand-computed cases and each convention's rules (eval.md §4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import rle_str

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_eval.referring import (
    ReferringConfig,
    evaluate_referring,
    letterbox,
    letterbox_size,
    resize_square,
)

H, W = 40, 60


def sample(ref_id, polys, sents=(0,)):
    return {
        "ref_id": ref_id,
        "image_id": ref_id,
        "height": H,
        "width": W,
        "split": "val",
        "segmentation": polys,
        "sentences": [{"sent": f"s{s}", "sent_id": ref_id * 10 + s} for s in sents],
    }


def box_poly(x0, y0, x1, y1):
    return [x0, y0, x0, y1, x1, y1, x1, y0]


def pred(ref_id, mask, sent_id=None):
    p = {"ref_id": ref_id, "segmentation": rle_str(mask)}
    if sent_id is not None:
        p["sent_id"] = sent_id
    return p


def box_mask(x0, y0, x1, y1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def gt_mask_of(poly):
    from pycocotools import mask as mask_utils

    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], H, W)))


def test_hand_computed_metrics():
    g1 = box_poly(10, 10, 30, 30)
    g2 = box_poly(0, 0, 20, 20)
    gts = [sample(1, [g1]), sample(2, [g2]), sample(3, [])]
    m1 = gt_mask_of(g1)
    m2 = gt_mask_of(g2)
    third = m2.copy()
    third[:, 7:] = 0  # a left strip of the second GT: IoU well below 0.5
    preds = [pred(1, m1, 10), pred(2, third, 20), pred(3, np.zeros((H, W), np.uint8), 30)]
    r = evaluate_referring(gts, preds)
    i2, u2 = int(third.sum()), int(m2.sum())
    assert r.num_samples == 3
    assert 0 < i2 / u2 < 0.5
    assert r.miou == (1.0 + i2 / u2 + 0.0) / 3
    assert r.oiou == (int(m1.sum()) + i2) / (int(m1.sum()) + u2)
    # Only the exact prediction clears any threshold; the empty sample counts as a miss.
    assert all(v == pytest.approx(1 / 3) for v in r.precision_at.values())
    # Empty union: skipped, or a perfect score.
    skip = evaluate_referring(gts, preds, ReferringConfig(empty_union="skip"))
    assert skip.num_samples == 2 and skip.num_skipped == 1
    one = evaluate_referring(gts, preds, ReferringConfig(empty_union="one"))
    assert one.miou == (1.0 + i2 / u2 + 1.0) / 3


def test_exclusive_gt_drops_overlaps_and_crowd_quirk():
    a, b = box_poly(0, 0, 30, 30), box_poly(20, 20, 50, 38)
    gts = [sample(1, [a, b])]
    union = np.maximum(gt_mask_of(a), gt_mask_of(b))
    overlap = gt_mask_of(a) & gt_mask_of(b)
    assert overlap.sum() > 0
    preds = [pred(1, union, 10)]
    assert evaluate_referring(gts, preds).miou == 1.0
    excl = evaluate_referring(gts, preds, ReferringConfig(gt_mask="exclusive"))
    assert excl.miou == (union.sum() - overlap.sum()) / union.sum()
    # SeqTR's quirk: a GT of several polygons is "crowd" -> I / |P|.
    small = box_mask(0, 0, 10, 10)
    crowd = evaluate_referring(gts, [pred(1, small, 10)], ReferringConfig(crowd_quirk=True))
    assert crowd.miou == 1.0  # the prediction lies inside the GT
    plain = evaluate_referring(gts, [pred(1, small, 10)])
    assert plain.miou == small.sum() / union.sum()


def test_one_sample_per_sentence_or_per_ref():
    g = box_poly(10, 10, 30, 30)
    gts = [sample(1, [g], sents=(0, 1))]
    m = gt_mask_of(g)
    preds = [pred(1, m, 10), pred(1, np.zeros_like(m), 11)]
    r = evaluate_referring(gts, preds)
    assert r.num_samples == 2 and r.miou == 0.5
    with pytest.raises(RemError, match="no prediction for ref 1 sentence 11"):
        evaluate_referring(gts, preds[:1])
    per_ref = evaluate_referring(gts, [pred(1, m)], ReferringConfig(unit="ref"))
    assert per_ref.num_samples == 1 and per_ref.miou == 1.0


def test_batch_mean_precision():
    gts = [sample(i, [box_poly(10, 10, 30, 30)]) for i in range(1, 4)]
    good = gt_mask_of(box_poly(10, 10, 30, 30))
    preds = [pred(1, good, 10), pred(2, good, 20), pred(3, np.zeros_like(good), 30)]
    flat = evaluate_referring(gts, preds)
    batched = evaluate_referring(gts, preds, ReferringConfig(batch_size=2))
    assert flat.precision_at["0.5"] == pytest.approx(2 / 3)
    assert batched.precision_at["0.5"] == pytest.approx((1.0 + 0.0) / 2)  # batches [1, 1], [0]


def test_square_resize_follows_pil():
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for h, w in [(40, 60), (427, 640), (480, 480), (17, 500), (600, 31)]:
        m = (rng.random((h, w)) < 0.5).astype(np.uint8)
        ours = resize_square(m, 480)
        theirs = np.asarray(pil.fromarray(m * 255).resize((480, 480), pil.NEAREST)) // 255
        assert np.array_equal(ours, theirs), (h, w)


@pytest.mark.parametrize(
    ("h", "w", "size", "padded"),
    [
        (480, 640, (480, 640), (480, 640)),
        (427, 640, (427, 640), (448, 640)),
        (375, 500, (480, 640), (480, 640)),
        (640, 427, (640, 427), (640, 448)),
    ],
)
def test_letterbox(h, w, size, padded):
    assert letterbox_size(h, w, 640) == size
    out = letterbox(np.ones((h, w), np.uint8), 640, 32)
    assert out.shape == padded
    assert out.sum() == size[0] * size[1]


def test_cli_presets(tmp_path):
    g = box_poly(10, 10, 30, 30)
    gts = [sample(1, [g])]
    m = gt_mask_of(g)
    (tmp_path / "gt.json").write_text(json.dumps(gts))
    (tmp_path / "p.json").write_text(json.dumps([pred(1, m, 10)]))
    runner = CliRunner()
    for preset in ("default", "legacy-lavt", "legacy-seqtr"):
        out = tmp_path / f"{preset}.json"
        res = runner.invoke(
            cli,
            [
                "eval-referring",
                str(tmp_path / "gt.json"),
                str(tmp_path / "p.json"),
                "--preset",
                preset,
                "--json",
                str(out),
            ],
        )
        assert res.exit_code == 0, res.output
        report = json.loads(out.read_text())
        assert report["miou"] == 1.0 and report["config"]["resolution"] in (
            "original",
            "square:480",
            "letterbox:640:32",
        )
    res = runner.invoke(
        cli,
        [
            "eval-referring",
            str(tmp_path / "gt.json"),
            str(tmp_path / "p.json"),
            "--resolution",
            "weird",
        ],
    )
    assert res.exit_code == 2 and res.output.startswith("error: ")
