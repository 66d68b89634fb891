"""A tiny PRM trained on synthetic images with image-level labels only: it classifies held-out
images well above chance and its peaks fall inside instances of their class far more often than
random points do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models import resnet50

from rem_core import masks as mask_ops
from rem_core.errors import RemError
from rem_core.io import load_coco
from rem_core.synth import make_sample
from rem_models import get_model
from rem_models.cim.dataset import category_order, read_rgb
from rem_models.cim.peaks import frame_to_pixel, image_peaks
from rem_models.cim.prm import load_imagenet_backbone, preprocess
from rem_models.cim.prm_train import PrmTrainSettings, labelled_images, train_prm

torch.set_num_threads(1)


def test_tiny_prm_classifies_and_its_peaks_hit_instances(tmp_path):
    sample = make_sample(
        tmp_path / "synth",
        num_images=64,
        width=128,
        height=96,
        num_categories=3,
        image_format="png",
        seed=3,
    )
    coco = load_coco(sample.exact)
    images = labelled_images(coco, sample.image_dir)
    train, held_out = images[:48], images[48:]
    torch.manual_seed(0)
    model = get_model("prm_test")
    # A random-init tiny backbone learns at the classifier's lr (the 0.01 factor is for an
    # ImageNet-initialised ResNet-50).
    settings = PrmTrainSettings(iterations=150, batch_size=8, lr=0.05, backbone_lr_factor=1.0)
    losses = train_prm(model, train, settings)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])

    with torch.no_grad():
        x = torch.stack([preprocess(read_rgb(im.path), model.input_size) for im in held_out])
        predicted = model(x).numpy() > 0
    truth = np.stack([im.labels for im in held_out])
    accuracy = (predicted == truth).mean()
    # Chance: the best constant answer per class (always / never present).
    chance = np.mean([max(col.mean(), 1 - col.mean()) for col in truth.T])
    # Measured: 0.917 vs 0.562.
    assert accuracy >= chance + 0.2, (accuracy, chance)

    cats = category_order(coco)
    inside, random_rate = [], []
    for im in held_out:
        info = coco.imgs[im.image_id]
        h, w = info["height"], info["width"]
        image = preprocess(read_rgb(im.path), model.input_size)
        for peak in image_peaks(model, image, np.flatnonzero(im.labels)):
            union = np.zeros((h, w), dtype=bool)
            for ann in coco.img_to_anns[im.image_id]:
                if ann["category_id"] == cats[peak.category]:
                    union |= mask_ops.decode(mask_ops.to_rle(ann["segmentation"], h, w)) > 0
            x_px, y_px = frame_to_pixel(peak.row, peak.col, model.frame_size, h, w)
            inside.append(union[y_px, x_px])
            random_rate.append(union.mean())  # a uniform random point's chance to be inside
    hit, chance_hit = float(np.mean(inside)), float(np.mean(random_rate))
    # Measured: 0.378 of 45 peaks vs 0.070 for random points.
    assert len(inside) >= len(held_out) and hit >= 3 * chance_hit and hit >= chance_hit + 0.15, (
        hit,
        chance_hit,
    )


def test_imagenet_init_takes_torchvision_resnet50_names(tmp_path):
    torch.manual_seed(0)
    net = resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(net.state_dict(), path)
    model = get_model("prm_r50")
    load_imagenet_backbone(model, path)
    assert torch.equal(model.features.conv1.weight, net.conv1.weight)
    assert torch.equal(model.features.layer4[2].bn3.running_var, net.layer4[2].bn3.running_var)
    torch.save({k: v for k, v in net.state_dict().items() if not k.startswith("layer4.")}, path)
    with pytest.raises(RemError, match=r"backbone: 60 missing \(first .layer4.0.conv1.weight.\)$"):
        load_imagenet_backbone(model, path)
