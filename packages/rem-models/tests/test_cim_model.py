"""The CIM network: heads' normalisations, score formula, parameter counts, losses, inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models import resnet50

from rem_models import get_model, parameter_count
from rem_models.cim.backbone import ResNet50Res4, Vgg16Dilated
from rem_models.cim.data import mask_crops, prepare_sample
from rem_models.cim.inference import score_proposals, select_detections
from rem_models.cim.losses import LossWeights, cim_losses, mil_loss

torch.set_num_threads(1)


def _rect(h, w, x1, y1, x2, y2):
    m = np.zeros((h, w), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def _sample(peaks=None):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
    masks = np.stack(
        [
            _rect(40, 48, 2, 3, 20, 30),
            _rect(40, 48, 2, 3, 12, 30),
            _rect(40, 48, 25, 5, 45, 20),
            _rect(40, 48, 30, 5, 45, 35),
            _rect(40, 48, 0, 0, 48, 40),
            _rect(40, 48, 5, 25, 40, 38),
        ]
    )
    masks[0, 3:10, 2:6] = False  # not a rectangle: the crop must differ from the box
    return prepare_sample(5, image, masks, np.array([True, False, True]), peaks)


def test_outputs_are_normalised_and_scores_follow_the_formula():
    torch.manual_seed(0)
    model = get_model("cim_test").eval()
    s = _sample()
    with torch.no_grad():
        out = model(
            torch.as_tensor(s.image).permute(2, 0, 1).float(),
            torch.as_tensor(s.boxes),
            torch.as_tensor(s.crops),
        )
    n = len(s.masks)
    assert out.mil.shape == (n, 3)
    # cls softmax x det softmax: an image score (column sum) is a probability.
    assert ((out.mil.sum(0) > 0) & (out.mil.sum(0) <= 1 + 1e-6)).all()
    assert len(out.refine_cls) == 3 and len(out.refine_iou) == 3
    for cls, iou in zip(out.refine_cls, out.refine_iou, strict=True):
        assert cls.shape == (n, 4) and torch.allclose(cls.sum(1), torch.ones(n))
        assert iou.shape == (n, 3) and ((iou > 0) & (iou < 1)).all()
    expected = sum(c[:, 1:] * i for c, i in zip(out.refine_cls, out.refine_iou, strict=True)) / 3
    torch.testing.assert_close(out.scores(), expected)


def test_mask_crop_is_the_mask_inside_its_box():
    m = np.zeros((20, 20), dtype=bool)
    m[0:14, 0:7] = True  # left half of the 14x14 box below
    m[0:14, 7:14][:7] = True  # plus its top-right quarter
    crops = mask_crops(m[None], np.array([[0, 0, 14, 14]], np.float32), size=2)
    np.testing.assert_allclose(crops[0], [[1, 1], [1, 0]])


def test_r50_parameter_count_is_backbone_plus_head_arithmetic():
    with torch.device("meta"):
        ref = resnet50()
    res4 = sum(
        p.numel()
        for name, p in ref.named_parameters()
        if not name.startswith(("layer4", "fc")) and "bn" not in name and "downsample.1" not in name
    )
    c, hidden, k = 1024, 4096, 20
    head = (2 * c * c * 9 + c) + (c * 49 * hidden + hidden) + (hidden * hidden + hidden)
    mil = 2 * (hidden * k + k)
    refine = 3 * ((hidden * (k + 1) + k + 1) + (hidden * k + k))
    # Frozen batch norm holds buffers, not parameters.
    assert parameter_count("cim_r50") == res4 + head + mil + refine
    assert 245e6 < parameter_count("cim_r50") < 255e6  # the paper's "about 250M"


def test_backbone_strides_and_channels():
    with torch.no_grad():
        r = ResNet50Res4().eval()(torch.zeros(1, 3, 64, 96))
        v = Vgg16Dilated().eval()(torch.zeros(1, 3, 64, 96))
    assert r.shape == (1, 1024, 4, 6)
    assert v.shape == (1, 512, 8, 12)


def test_losses_are_finite_and_reach_every_head():
    torch.manual_seed(0)
    model = get_model("cim_test")
    s = _sample(peaks=[(10, 15, 0)])
    out = model(
        torch.as_tensor(s.image).permute(2, 0, 1).float(),
        torch.as_tensor(s.boxes),
        torch.as_tensor(s.crops),
    )
    losses = cim_losses(out, s, np.random.default_rng(0))
    assert set(losses) == {"loss_mil", "loss_refine", "loss_integrity", "loss_pcl"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("mil.classifier", "mil.detector", "refine.refine_cls.0", "refine.refine_cls.2"):
        assert model.get_submodule(name).weight.grad.abs().sum() > 0, name
    assert model.backbone.body[0].weight.grad.abs().sum() > 0


def test_mil_loss_is_bce_of_summed_scores():
    mil = torch.tensor([[0.2, 0.1], [0.3, 0.1]])
    expected = -(np.log(0.5) + np.log(1 - 0.2)) / 2
    assert float(mil_loss(mil, torch.tensor([1.0, 0.0]))) == pytest.approx(expected)


def test_loss_weights_are_the_published_ones():
    w = LossWeights()
    assert (w.mil, w.pcl, w.refine_first, w.refine, w.integrity) == (1, 12, 3, 1, 3)


def test_flip_tta_averages_the_mirrored_image():
    torch.manual_seed(0)
    model = get_model("cim_test").eval()
    s = _sample()
    mirrored = prepare_sample(5, s.image[:, ::-1], s.masks[:, :, ::-1], s.labels)
    plain = score_proposals(model, s)
    flipped = score_proposals(model, mirrored)
    both = score_proposals(model, s, flip=True)
    np.testing.assert_allclose(both, (plain + flipped) / 2, rtol=1e-4, atol=1e-6)
    # Multi-scale: the mean of the single-scale runs.
    a, b = score_proposals(model, s, [32]), score_proposals(model, s, [64])
    np.testing.assert_allclose(score_proposals(model, s, [32, 64]), (a + b) / 2, rtol=1e-5)


def test_per_class_box_nms_and_top_k():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([[0.9, 0.0], [0.8, 0.7], [0.1, 0.0]], np.float32)
    # Class 0: box 1 overlaps box 0 with IoU 90/110 > 0.3 -> suppressed; class 1 keeps box 1.
    dets = select_detections(scores, boxes, nms_thr=0.3)
    assert [(i, c) for i, c, _ in dets] == [(0, 0), (1, 1), (2, 0)]
    assert select_detections(scores, boxes, nms_thr=0.95)[1][:2] == (1, 0)
    assert len(select_detections(scores, boxes, max_dets=2)) == 2


def test_training_with_random_scales_is_seeded_and_moves_the_weights():
    from rem_models.cim.train import CimTrainSettings, train_cim

    settings = CimTrainSettings(iterations=3, step=2, lr=0.01, scales=(32, 56), seed=4)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = get_model("cim_test")
        before = model.refine.refine_cls[0].weight.detach().clone()
        history = train_cim(model, [_sample()], settings)
        runs.append([h["total"] for h in history])
        assert not torch.equal(before, model.refine.refine_cls[0].weight)
        assert not model.training
    assert runs[0] == runs[1] and len(runs[0]) == 3
    with pytest.raises(ValueError, match="no training image"):
        train_cim(get_model("cim_test"), [], settings)
