"""The released checkpoints' key -> shape layouts, written out from the reference naming rules.

Independent of rem's modules: every name below follows the reference code (mmdetection 1.0's
``ConvModule`` = ``conv`` + ``gn``, torchvision ResNet names, SOLO's / AggMask's head
attributes) with the shapes worked out from the configs, so comparing them with a rem model's
``state_dict()`` checks the layout, and their sums check the published parameter counts.
"""

from __future__ import annotations

Table = dict[str, tuple[int, ...]]


def _bn(prefix: str, c: int) -> Table:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def resnet(
    depth: int,
    *,
    blocks: list[int] | None = None,
    stem: int = 64,
    planes: tuple[int, ...] = (64, 128, 256, 512),
    groups: int = 1,
    width_per_group: int = 64,
    dcn: str | None = None,
    prefix: str = "backbone.",
) -> Table:
    """torchvision ResNet / ResNeXt names (no ``fc``); DCN stages 2-4 get offset branches."""
    bottleneck = depth >= 50
    layers = (
        blocks or {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
    )
    expansion = 4 if bottleneck else 1
    t: Table = {f"{prefix}conv1.weight": (stem, 3, 7, 7), **_bn(f"{prefix}bn1", stem)}
    inplanes = stem
    for s, (n, p) in enumerate(zip(layers, planes)):
        for b in range(n):
            base = f"{prefix}layer{s + 1}.{b}"
            out = p * expansion
            if bottleneck:
                width = int(p * (width_per_group / 64.0)) * groups
                t[f"{base}.conv1.weight"] = (width, inplanes, 1, 1)
                t.update(_bn(f"{base}.bn1", width))
                t[f"{base}.conv2.weight"] = (width, width // groups, 3, 3)
                if dcn and s > 0:
                    name, channels = (
                        ("conv_offset_mask", 27) if dcn == "dcnv2" else ("conv_offset", 18)
                    )
                    t[f"{base}.conv2.{name}.weight"] = (channels, width, 3, 3)
                    t[f"{base}.conv2.{name}.bias"] = (channels,)
                t.update(_bn(f"{base}.bn2", width))
                t[f"{base}.conv3.weight"] = (out, width, 1, 1)
                t.update(_bn(f"{base}.bn3", out))
            else:
                t[f"{base}.conv1.weight"] = (p, inplanes, 3, 3)
                t.update(_bn(f"{base}.bn1", p))
                t[f"{base}.conv2.weight"] = (p, p, 3, 3)
                t.update(_bn(f"{base}.bn2", p))
            if b == 0 and (s > 0 or inplanes != out):
                t[f"{base}.downsample.0.weight"] = (out, inplanes, 1, 1)
                t.update(_bn(f"{base}.downsample.1", out))
            inplanes = out
    return t


def fpn(in_channels: list[int], out: int = 256) -> Table:
    t: Table = {}
    for i, c in enumerate(in_channels):
        t[f"neck.lateral_convs.{i}.conv.weight"] = (out, c, 1, 1)
        t[f"neck.lateral_convs.{i}.conv.bias"] = (out,)
        t[f"neck.fpn_convs.{i}.conv.weight"] = (out, out, 3, 3)
        t[f"neck.fpn_convs.{i}.conv.bias"] = (out,)
    return t


def conv_module(
    prefix: str, cout: int, cin: int, k: int, *, gn: bool = True, dcn: str | None = None
) -> Table:
    """mmdet ConvModule: bias-free conv (+ offsets when deformable) and a GroupNorm ``gn``."""
    t: Table = {f"{prefix}.conv.weight": (cout, cin, k, k)}
    if dcn:
        name, per_tap = ("conv_offset_mask", 3) if dcn == "dcnv2" else ("conv_offset", 2)
        t[f"{prefix}.conv.{name}.weight"] = (per_tap * k * k, cin, k, k)
        t[f"{prefix}.conv.{name}.bias"] = (per_tap * k * k,)
    if gn:
        t[f"{prefix}.gn.weight"] = (cout,)
        t[f"{prefix}.gn.bias"] = (cout,)
    return t


def _towers(
    names: dict[str, int], channels: int, in_ch: int, depth: int, dcn=None, last_only=False
) -> Table:
    t: Table = {}
    for name, extra in names.items():
        for i in range(depth):
            kind = dcn if dcn and (not last_only or i == depth - 1) else None
            cin = in_ch + extra if i == 0 else channels
            t.update(conv_module(f"bbox_head.{name}.{i}", channels, cin, 3, dcn=kind))
    return t


def _conv(prefix: str, cout: int, cin: int, k: int) -> Table:
    return {f"{prefix}.weight": (cout, cin, k, k), f"{prefix}.bias": (cout,)}


def solo_head(
    grids: list[int], classes: int = 80, channels: int = 256, depth: int = 7, in_ch: int = 256
) -> Table:
    t = _towers({"ins_convs": 2, "cate_convs": 0}, channels, in_ch, depth)
    for i, s in enumerate(grids):
        t.update(_conv(f"bbox_head.solo_ins_list.{i}", s * s, channels, 1))
    t.update(_conv("bbox_head.solo_cate", classes, channels, 3))
    return t


def solov2_head(
    classes: int = 80,
    channels: int = 512,
    depth: int = 4,
    kernels: int = 256,
    in_ch: int = 256,
    dcn: str | None = None,
    last_only: bool = False,
) -> Table:
    t = _towers({"kernel_convs": 2, "cate_convs": 0}, channels, in_ch, depth, dcn, last_only)
    t.update(_conv("bbox_head.solo_cate", classes, channels, 3))
    t.update(_conv("bbox_head.solo_kernel", kernels, channels, 3))
    return t


def _level_convs(prefix: str, in_ch: int, ch: int, *, gn: bool, dcn: str | None = None) -> Table:
    t: Table = {}
    for level in range(4):
        for j in range(max(level, 1)):
            cin = (in_ch + (2 if level == 3 else 0)) if j == 0 else ch
            t.update(conv_module(f"{prefix}.{level}.conv{j}", ch, cin, 3, gn=gn, dcn=dcn))
    return t


def mask_feat_head(
    in_ch: int = 256, ch: int = 128, out: int = 256, dcn: str | None = None
) -> Table:
    t = _level_convs("mask_feat_head.convs_all_levels", in_ch, ch, gn=True, dcn=dcn)
    t.update(conv_module("mask_feat_head.conv_pred.0", out, ch, 1, dcn=dcn))
    return t


def _aggregator_parts(weights: int, k: int, channels: int, in_ch: int, context: int) -> Table:
    t = _conv("bbox_head.learned_weights", weights, channels, k)
    t.update(_conv("bbox_head.context_fusion_convs.0", in_ch, in_ch * 5, 1))
    t["bbox_head.context_fusion_convs.1.weight"] = (in_ch,)
    t["bbox_head.context_fusion_convs.1.bias"] = (in_ch,)
    t.update(_conv("bbox_head.context_fusion_convs.3", context, in_ch, 1))
    return t


def aggmask_head(
    mask_grids: list[int],
    weights: int = 945,
    classes: int = 80,
    *,
    channels: int = 256,
    depth: int = 7,
    in_ch: int = 256,
    k: int = 3,
    context: int = 16,
) -> Table:
    t = solo_head(mask_grids, classes, channels, depth, in_ch)
    t.update(_aggregator_parts(weights, k, channels, in_ch, context))
    return t


def aggmask_star_head(
    weights: int = 945,
    classes: int = 80,
    *,
    channels: int = 256,
    depth: int = 4,
    in_ch: int = 256,
    k: int = 1,
    context: int = 16,
) -> Table:
    t = _level_convs("bbox_head.feature_convs", in_ch, channels, gn=False)
    t.update(conv_module("bbox_head.solo_mask", channels, channels, 1))
    names = {"kernel_convs": 2, "kernel_convs_convcomb": 2, "cate_convs": 0}
    t.update(_towers(names, channels, in_ch, depth))
    t.update(_conv("bbox_head.solo_kernel", channels, channels, 1))
    t.update(_conv("bbox_head.solo_cate", classes, channels, 3))
    t.update(_aggregator_parts(weights, k, channels, in_ch, context))
    return t


def parameters(table: Table) -> int:
    """Parameter count of a table (BatchNorm running statistics are buffers, not parameters)."""
    total = 0
    for key, shape in table.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


GRIDS = [40, 36, 24, 16, 12]
R50_OUT = [256, 512, 1024, 2048]


def official_table(name: str) -> Table:
    """The key layout of a released checkpoint of registered variant ``name``."""
    if name in ("solo_r50_1x", "solo_r50_3x", "solo_r101_3x"):
        depth = 101 if "r101" in name else 50
        return {**resnet(depth), **fpn(R50_OUT), **solo_head(GRIDS)}
    if name in ("solov2_r50_1x", "solov2_r50_3x", "solov2_r101_3x"):
        depth = 101 if "r101" in name else 50
        return {**resnet(depth), **fpn(R50_OUT), **solov2_head(), **mask_feat_head()}
    if name == "solov2_r101_dcn_3x":
        return {
            **resnet(101, dcn="dcnv2"),
            **fpn(R50_OUT),
            **solov2_head(dcn="dcnv2"),
            **mask_feat_head(dcn="dcnv2"),
        }
    if name == "solov2_x101_dcn_3x":
        return {
            **resnet(101, dcn="dcnv2", groups=64, width_per_group=4),
            **fpn(R50_OUT),
            **solov2_head(dcn="dcnv2"),
            **mask_feat_head(dcn="dcnv2"),
        }
    if name.startswith("solov2_light"):
        depth = int(name.split("_r")[1].split("_")[0])
        outs = [64, 128, 256, 512] if depth < 50 else R50_OUT
        dcn = "dcn" if "dcn" in name else None
        depth_convs = 3 if "512" in name else 2
        head = solov2_head(channels=256, depth=depth_convs, kernels=128, dcn=dcn, last_only=True)
        return {**resnet(depth, dcn=dcn), **fpn(outs), **head, **mask_feat_head(out=128)}
    if name.startswith("aggmask_star"):
        return {
            **resnet(101 if "r101" in name else 50),
            **fpn(R50_OUT),
            **aggmask_star_head(945 if "half" not in name else 909),
        }
    if name.startswith("aggmask"):
        half = "half" in name
        head = aggmask_head([20, 18, 12, 8, 6] if half else GRIDS, 909 if half else 945)
        return {**resnet(101 if "r101" in name else 50), **fpn(R50_OUT), **head}
    raise KeyError(name)


TINY_GRIDS = [12, 10, 8, 6, 4]
TINY_BACKBONE = {"blocks": [1, 1, 1, 1], "stem": 16, "planes": (16, 32, 64, 128)}


def tiny_table(name: str) -> Table:
    """Layouts of the ``*_test`` variants (ResNet-18-style 1-block stages of width 16..128,
    32-wide neck and towers, 3 classes; AggMask heads: 1x1 weight convs, 8 context channels)."""
    base = {**resnet(18, **TINY_BACKBONE), **fpn([16, 32, 64, 128], 32)}  # type: ignore[arg-type]
    if name == "solo_test":
        return {**base, **solo_head(TINY_GRIDS, 3, 32, 2, 32)}
    if name == "solov2_test":
        head = solov2_head(3, 32, 2, 32, 32)
        return {**base, **head, **mask_feat_head(32, 16, 32)}
    # 5 sampled masks + 8 context channels = 13 inputs: 13*4*9+4 + 4*4*9+4 + 4*9+1 = 657.
    if name == "aggmask_test":
        return {
            **base,
            **aggmask_head(TINY_GRIDS, 657, 3, channels=32, depth=2, in_ch=32, k=1, context=8),
        }
    if name == "aggmask_star_test":
        return {**base, **aggmask_star_head(657, 3, channels=32, depth=2, in_ch=32, k=1, context=8)}
    raise KeyError(name)
