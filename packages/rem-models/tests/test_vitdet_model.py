"""The ViTDet model contract the train/predict engine relies on (torchvision detection style)."""

from __future__ import annotations

import pytest
import torch

from rem_models import get_model, get_model_entry, list_models


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return get_model("vitdet_test")


def ellipse(h: int, w: int, box: list[float]) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1


def sample_batch() -> tuple[list[torch.Tensor], list[dict]]:
    g = torch.Generator().manual_seed(7)
    images = [torch.rand(3, 128, 100, generator=g) * 255, torch.rand(3, 64, 128, generator=g) * 255]
    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0], [50.0, 5.0, 95.0, 40.0]])
    targets = [
        {
            "boxes": boxes,
            "labels": torch.tensor([0, 4]),
            "masks": torch.stack([ellipse(128, 100, b.tolist()) for b in boxes]).to(torch.uint8),
        },
        # An image without objects.
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
            "masks": torch.zeros(0, 64, 128, dtype=torch.bool),
        },
    ]
    return images, targets


def test_registered_variants():
    assert list_models("vitdet*") == ["vitdet_b", "vitdet_h", "vitdet_l", "vitdet_test"]
    b = get_model_entry("vitdet_b")
    assert b.summary.startswith("ViTDet Mask R-CNN, ViT-B/16")
    coco = b.weights[0]
    assert coco.url == (
        "https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/mask_rcnn_vitdet_b/"
        "f325346929/model_final_61ccd1.pkl"
    )
    assert coco.file_format == "detectron2-pkl" and coco.metrics["coco/mask_ap"] == 45.9
    h = get_model_entry("vitdet_h").weights
    assert (
        h[0].file_name == "model_final_7224f1.pkl"
        and h[1].file_name == "mae_pretrain_vit_huge_p14to16.pth"
    )


def test_training_returns_the_five_losses_and_trains_every_part(model):
    images, targets = sample_batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    for name, value in losses.items():
        assert value.ndim == 0 and torch.isfinite(value), name
    assert losses["loss_mask"] > 0 and losses["loss_box_reg"] > 0
    sum(losses.values()).backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert without_grad == []
    stats = model.training_stats
    assert stats["rpn/num_pos_anchors"] > 0 and stats["roi/num_fg_samples"] > 0


def test_images_without_objects_train(model):
    images, targets = sample_batch()
    model.train()
    losses = model(images[1:], targets[1:])
    assert losses["loss_box_reg"] == 0 and losses["loss_rpn_loc"] == 0 and losses["loss_mask"] == 0
    assert losses["loss_cls"] > 0 and losses["loss_rpn_cls"] > 0
    sum(losses.values()).backward()  # zero losses still hold the graph


@torch.no_grad()
def test_inference_outputs(model):
    images, _ = sample_batch()
    model.eval()
    outputs = model(images)
    assert len(outputs) == 2
    for out, image in zip(outputs, images):
        h, w = image.shape[1:]
        n = len(out["boxes"])
        assert 0 < n <= 100
        assert out["boxes"].shape == (n, 4) and out["boxes"].dtype == torch.float32
        assert (out["boxes"][:, 0::2] <= w).all() and (out["boxes"][:, 1::2] <= h).all()
        assert (out["boxes"] >= 0).all()
        assert out["labels"].dtype == torch.int64 and out["labels"].max() < 5
        assert (out["scores"][:-1] >= out["scores"][1:]).all()
        assert out["masks"].shape == (n, h, w) and out["masks"].dtype == torch.bool
    rescaled = model(images, output_sizes=[(256, 200), (32, 64)])
    assert rescaled[0]["masks"].shape[1:] == (256, 200) and rescaled[1]["masks"].shape[1:] == (
        32,
        64,
    )
    same = rescaled[0]["labels"] == outputs[0]["labels"][: len(rescaled[0]["labels"])]
    assert same.all()
    assert torch.allclose(rescaled[0]["boxes"], outputs[0]["boxes"][: len(same)] * 2)


def test_mixed_precision_keeps_outputs_and_losses_in_float32(model):
    images, targets = sample_batch()
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images)[0]
    assert out["boxes"].dtype == out["scores"].dtype == torch.float32
    assert out["masks"].dtype == torch.bool


def test_input_errors(model):
    images, targets = sample_batch()
    model.eval()
    with pytest.raises(ValueError, match=r"images\[0\] is 130x100, larger than the 128 px square"):
        model([torch.zeros(3, 130, 100)])
    with pytest.raises(ValueError, match=r"must be \(3, H, W\)"):
        model([torch.zeros(1, 10, 10)])
    with pytest.raises(ValueError, match="2 output sizes for 1 images"):
        model(images[:1], output_sizes=[(1, 1), (2, 2)])
    model.train()
    with pytest.raises(ValueError, match="one target dict per image"):
        model(images)
    bad = dict(targets[0], labels=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"targets\[0\]: labels must be in \[0, 5\)"):
        model(images[:1], [bad])
    bad = dict(targets[0], masks=targets[0]["masks"][:, :64])
    with pytest.raises(ValueError, match=r"targets\[0\]: masks must be \(2, 128, 100\)"):
        model(images[:1], [bad])


@torch.no_grad()
def test_without_square_padding_pads_to_the_stride():
    torch.manual_seed(0)
    model = get_model("vitdet_test", **{"pyramid.square_pad": 0}).eval()
    batch, sizes = model.preprocess([torch.zeros(3, 70, 100), torch.zeros(3, 40, 33)])
    assert batch.shape == (2, 3, 96, 128) and sizes == [(70, 100), (40, 33)]
    outputs = model([torch.rand(3, 70, 100) * 255])
    assert outputs[0]["masks"].shape[1:] == (70, 100)


def test_drop_path_and_activation_checkpointing():
    images, targets = sample_batch()
    torch.manual_seed(0)
    plain = get_model("vitdet_test")
    torch.manual_seed(0)
    checkpointed = get_model("vitdet_test", **{"vit.use_act_checkpoint": True})
    grads = []
    for net in (plain, checkpointed):
        net.train()
        torch.manual_seed(1)
        sum(net(images, targets).values()).backward()
        grads.append(net.backbone.vit.blocks[0].attn.qkv.weight.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)

    torch.manual_seed(0)
    dropping = get_model("vitdet_test", **{"vit.drop_path_rate": 0.5})
    batch, _ = dropping.preprocess(images)
    dropping.train()
    assert not torch.equal(dropping.backbone.vit(batch), dropping.backbone.vit(batch))
    dropping.eval()
    assert torch.equal(dropping.backbone.vit(batch), dropping.backbone.vit(batch))
