"""CIM's HRNet-W48-C backbone: official checkpoint layout, parameter counts, stride, freezing.

The official HRNet-Image-Classification key -> shape table (``hrnet_key_tables``) is written out
from the published architecture, independently of timm; the published size of HRNetV2-W48-C is
77.5M parameters.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hrnet_key_tables import official_table
from torchvision.transforms.functional import normalize

from rem_core import masks as mask_ops
from rem_core.errors import RemError
from rem_core.io import load_coco
from rem_core.synth import make_sample
from rem_models import get_model, parameter_count
from rem_models.checkpoints import load_checkpoint_safetensors
from rem_models.cim.data import prepare_sample
from rem_models.cim.hrnet import HRNetCls, hrnet_cls_config, load_hrnet_imagenet
from rem_models.cim.losses import cim_losses
from rem_models.cim.proposals_io import image_proposals, save_proposals

timm_hrnet = pytest.importorskip("timm.models.hrnet")

torch.set_num_threads(1)

W48_PARAMS = 77_469_864  # published: 77.5M (HRNet-Image-Classification README, HRNet-W48-C)
W48_BACKBONE = W48_PARAMS - (2048 * 1000 + 1000)  # without the 1000-way classifier


def _params(table: dict) -> int:
    return sum(int(np.prod(s)) for k, s in table.items() if not k.endswith(("_mean", "_var")))


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    state = module.state_dict()
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _checkpoint(w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) for k, s in official_table(w).items()}
    return {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}


def test_official_w48_layout_maps_completely_and_has_the_published_size():
    assert hrnet_cls_config(48) == timm_hrnet.cfg_cls["hrnet_w48"]
    table = official_table(48)
    assert _params(table) == W48_PARAMS  # 77.5M as published
    with torch.device("meta"):
        backbone = HRNetCls(48)
    ours = _shapes(backbone.net)
    assert ours == {k: s for k, s in table.items() if not k.startswith("classifier.")}
    assert sum(p.numel() for p in backbone.parameters()) == W48_BACKBONE == 75_420_864


def test_imagenet_weights_load_strictly(tmp_path):
    backbone = HRNetCls(8)
    state = _checkpoint(8)
    path = tmp_path / "hrnetv2_w8_imagenet_pretrained.pth"
    torch.save(state, path)
    dropped = load_hrnet_imagenet(backbone, path)
    assert dropped == ["classifier.bias", "classifier.weight"]
    loaded = backbone.net.state_dict()
    for key, tensor in state.items():
        if not key.startswith("classifier."):
            assert torch.equal(loaded[key], tensor), key
    assert not backbone.net.conv1.weight.requires_grad  # loading keeps the frozen part frozen

    with pytest.raises(RemError, match=r"1 backbone tensors missing \['final_layer.0.bias'\]"):
        load_hrnet_imagenet(backbone, {k: v for k, v in state.items() if k != "final_layer.0.bias"})
    with pytest.raises(RemError, match=r"1 unexpected \['head.fc.weight'\]"):
        load_hrnet_imagenet(backbone, state | {"head.fc.weight": torch.zeros(1)})
    with pytest.raises(
        RemError, match=r"\(16, 256, 3, 3\) != the model's \(8, 256, 3, 3\)"
    ) as info:
        load_hrnet_imagenet(backbone, _checkpoint(16))
    assert info.value.where == "transition1.0.0.weight"


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Payload()}, path)
    with pytest.raises(RemError, match="refusing to load global"):
        load_hrnet_imagenet(HRNetCls(8), path)
    assert "code ran" not in capsys.readouterr().out


def test_stride_32_with_right_bottom_zero_padding_equals_timm():
    torch.manual_seed(0)
    backbone = HRNetCls(8).eval()
    x = torch.randn(1, 3, 70, 45)
    with torch.no_grad():
        y = backbone(x)
        padded = F.pad(x, (0, 64 - 45, 0, 96 - 70))  # zeros to the next multiples of 32
        reference = backbone.net.forward_features(padded)
    assert y.shape == (1, 2048, 3, 2)
    torch.testing.assert_close(y, reference, rtol=0, atol=0)


STEM = ("conv1", "bn1", "conv2", "bn2", "layer1")


@pytest.mark.parametrize(
    ("freeze_at", "frozen", "trained"),
    [
        (2, (*STEM, "transition1", "stage2"), ("stage3", "stage4", "final_layer")),
        (1, STEM, ("transition1", "stage2", "stage3")),
        (0, (), ("conv1", "layer1", "stage2")),
    ],
)
def test_frozen_parts_get_no_gradient_and_batch_norm_stays_in_eval(freeze_at, frozen, trained):
    torch.manual_seed(0)
    backbone = HRNetCls(8, freeze_at=freeze_at).train()
    assert backbone.training and backbone.net.stage3.training
    bns = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = [m.running_mean.clone() for m in bns]
    backbone(torch.randn(1, 3, 64, 64)).square().mean().backward()
    assert all(torch.equal(m.running_mean, b) for m, b in zip(bns, before, strict=True))
    net = backbone.net
    for part in frozen:
        assert all(not p.requires_grad and p.grad is None for p in getattr(net, part).parameters())
    for part in trained:
        first = next(getattr(net, part).parameters())
        assert first.grad is not None and first.grad.abs().sum() > 0, part


def test_frozen_parameter_count_is_stem_layer1_transition1_stage2():
    with torch.device("meta"):
        backbone = HRNetCls(48)
    frozen = sum(p.numel() for p in backbone.parameters() if not p.requires_grad)
    table = official_table(48)
    parts = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "transition1.", "stage2.")
    assert frozen == _params({k: s for k, s in table.items() if k.startswith(parts)}) == 1_535_232


def test_cim_hrnet48_parameter_count_is_backbone_plus_head_arithmetic():
    c, hidden, roi, k, branches = 2048, 4096, 7, 20, 3
    mask_branch = 2 * c * c * 9 + c
    seg_fc = (c * roi * roi * hidden + hidden) + (hidden * hidden + hidden)
    mil = 2 * (hidden * k + k)
    refine = branches * ((hidden * (k + 1) + k + 1) + (hidden * k + k))
    expected = W48_BACKBONE + mask_branch + seg_fc + mil + refine
    assert parameter_count("cim_hrnet48") == expected == 579_415_395


def test_input_normalisation_is_imagenet_to_tensor():
    model = get_model("cim_test")
    x = torch.randint(0, 256, (3, 5, 7)).float()
    ours = (x - model.pixel_mean) / model.pixel_std
    to_tensor = normalize(x / 255, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    torch.testing.assert_close(ours, to_tensor)


def _calibrate_batch_norm(backbone: HRNetCls, x: torch.Tensor) -> None:
    """Random weights with identity BN statistics blow activations up (~1e7) and saturate every
    softmax (zero gradients); statistics of one batch stand in for ImageNet's."""
    bns = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly its statistics
        m.train()
    with torch.no_grad():
        backbone.net.forward_features(F.pad(x, (0, -x.shape[-1] % 32, 0, -x.shape[-2] % 32)))
    backbone.train(backbone.training)


def test_small_cim_with_hrnet_trains_on_cpu():
    torch.manual_seed(0)
    model = get_model("cim_hrnet48", hrnet_width=8, hidden_dim=32, num_classes=3)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(40, 50, 3), dtype=np.uint8)
    masks = np.zeros((4, 40, 50), dtype=bool)
    masks[0, 2:30, 3:20] = masks[1, 5:35, 25:48] = masks[2, 10:20, 10:40] = masks[3, :, :] = True
    sample = prepare_sample(1, image, masks, np.array([True, False, True]))
    img = torch.as_tensor(sample.image).permute(2, 0, 1).float()
    _calibrate_batch_norm(model.backbone, ((img - model.pixel_mean) / model.pixel_std)[None])
    model.train()
    frozen = model.backbone.net.conv1.weight.clone()
    out = model(img, torch.as_tensor(sample.boxes), torch.as_tensor(sample.crops))
    assert out.mil.shape == (4, 3) and out.refine_cls[0].shape == (4, 4)
    losses = cim_losses(out, sample, rng)
    sum(losses.values()).backward()
    net = model.backbone.net
    assert net.conv1.weight.grad is None and net.stage2[0].branches[0][0].conv1.weight.grad is None
    trained = net.stage4[0].branches[3][0].conv1.weight  # the stride-32 branch
    for p in (trained, net.final_layer[0].weight, model.head.mask_branch[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    before = trained.detach().clone()
    torch.optim.SGD(model.parameters(), lr=1e-3, weight_decay=5e-4).step()
    assert torch.equal(net.conv1.weight, frozen) and not torch.equal(trained, before)


def test_missing_timm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm.models", None)
    with pytest.raises(RemError, match=r"pip install 'rem-models\[hrnet\]'"):
        get_model("cim_hrnet48", hrnet_width=8, hidden_dim=8)


def test_rem_cim_train_starts_from_imagenet_hrnet_weights(tmp_path, rem_cli):
    s = make_sample(tmp_path / "d", num_images=1, width=64, height=64, num_categories=2, seed=1)
    coco = load_coco(s.exact)
    (image_id,) = coco.imgs
    masks = np.stack(
        [
            mask_ops.decode(mask_ops.to_rle(a["segmentation"], 64, 64))
            for a in coco.img_to_anns[image_id]
        ]
        + [np.ones((64, 64), np.uint8)]
    )
    props, weights = tmp_path / "p.json", tmp_path / "hrnetv2_w8_imagenet_pretrained.pth"
    save_proposals(props, [image_proposals(image_id, masks, None)], "gt")
    # An "ImageNet" init whose BN statistics fit its weights (random statistics overflow).
    torch.manual_seed(0)
    pretrained = HRNetCls(8)
    _calibrate_batch_norm(pretrained, torch.randn(1, 3, 64, 64))
    state = pretrained.net.state_dict() | {"classifier.weight": torch.zeros(1000, 2048)}
    torch.save(state, weights)
    run = rem_cli(
        "cim",
        "train",
        str(s.exact),
        str(props),
        str(s.image_dir),
        str(tmp_path / "c.safetensors"),
        "--model",
        "cim_test",
        "--backbone-weights",
        str(weights),
    )
    assert run.exit_code == 2
    assert run.output.strip() == (
        "error: --backbone-weights: cim_test has a tiny backbone; ImageNet weights load into "
        "the HRNet backbone only (--model cim_hrnet48)"
    )
    out = tmp_path / "hrnet.safetensors"
    run = rem_cli(
        "cim",
        "train",
        str(s.exact),
        str(props),
        str(s.image_dir),
        str(out),
        "--model",
        "cim_hrnet48",
        "--set",
        "hrnet_width=8",
        "--set",
        "hidden_dim=16",
        "--iterations",
        "1",
        "--scales",
        "",
        "--backbone-weights",
        str(weights),
    )
    assert run.exit_code == 0, run.output
    trained = load_checkpoint_safetensors(out).state_dict
    # The frozen stem keeps the ImageNet init through training; so do all BN statistics.
    for key in ("conv1.weight", "layer1.0.conv1.weight", "stage4.0.branches.0.0.bn1.running_var"):
        assert torch.equal(trained[f"backbone.net.{key}"], state[key]), key
