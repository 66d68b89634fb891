"""The official HRNet-Image-Classification checkpoint layout (``hrnetv2_w{W}_imagenet_pretrained
.pth``): key -> shape, written out from the published architecture, independently of timm.

The names follow HRNet-Image-Classification's ``cls_hrnet.py`` (stem ``conv1/bn1/conv2/bn2``,
``layer1`` Bottlenecks, ``transition{1,2,3}``, ``stage{2,3,4}.{module}.branches`` /
``fuse_layers``, the classification head's ``incre_modules`` / ``downsamp_modules`` /
``final_layer``, ``classifier``) with the shapes of its ``w{W}`` config (branches W, 2W, 4W, 8W;
1/4/3 modules of 4 BasicBlocks). BatchNorm's ``num_batches_tracked`` counters are left out.
"""

from __future__ import annotations

Table = dict[str, tuple[int, ...]]


def _bn(table: Table, name: str, c: int) -> None:
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        table[f"{name}.{leaf}"] = (c,)


def _conv(table: Table, name: str, c_out: int, c_in: int, k: int, bias: bool = False) -> None:
    table[f"{name}.weight"] = (c_out, c_in, k, k)
    if bias:
        table[f"{name}.bias"] = (c_out,)


def _bottleneck(table: Table, name: str, c_in: int, planes: int) -> None:
    for i, (c_o, c_i, k) in enumerate(
        ((planes, c_in, 1), (planes, planes, 3), (4 * planes, planes, 1))
    ):
        _conv(table, f"{name}.conv{i + 1}", c_o, c_i, k)
        _bn(table, f"{name}.bn{i + 1}", c_o)
    if c_in != 4 * planes:
        _conv(table, f"{name}.downsample.0", 4 * planes, c_in, 1)
        _bn(table, f"{name}.downsample.1", 4 * planes)


def official_table(w: int) -> Table:
    """Key -> shape of an official ``hrnetv2_w{w}_imagenet_pretrained.pth`` (BN counters aside)."""
    t: Table = {}
    _conv(t, "conv1", 64, 3, 3)
    _bn(t, "bn1", 64)
    _conv(t, "conv2", 64, 64, 3)
    _bn(t, "bn2", 64)
    for b in range(4):
        _bottleneck(t, f"layer1.{b}", 64 if b == 0 else 256, 64)
    widths = {2: [w, 2 * w], 3: [w, 2 * w, 4 * w], 4: [w, 2 * w, 4 * w, 8 * w]}
    # transition1 re-projects layer1's 256 channels for both branches; later ones add a branch.
    for i, c in enumerate(widths[2]):
        prefix = "transition1.0" if i == 0 else "transition1.1.0"
        _conv(t, f"{prefix}.0", c, 256, 3)
        _bn(t, f"{prefix}.1", c)
    for s in (3, 4):
        new = widths[s][-1]
        _conv(t, f"transition{s - 1}.{s - 1}.0.0", new, widths[s - 1][-1], 3)
        _bn(t, f"transition{s - 1}.{s - 1}.0.1", new)
    for s, modules in ((2, 1), (3, 4), (4, 3)):
        ch = widths[s]
        for m in range(modules):
            base = f"stage{s}.{m}"
            for b, c in enumerate(ch):
                for k in range(4):
                    for j in (1, 2):
                        _conv(t, f"{base}.branches.{b}.{k}.conv{j}", c, c, 3)
                        _bn(t, f"{base}.branches.{b}.{k}.bn{j}", c)
            for i in range(len(ch)):
                for j in range(len(ch)):
                    if j > i:  # 1x1 conv + BN, then upsample
                        _conv(t, f"{base}.fuse_layers.{i}.{j}.0", ch[i], ch[j], 1)
                        _bn(t, f"{base}.fuse_layers.{i}.{j}.1", ch[i])
                    for k in range(i - j):  # stride-2 3x3 convs, the last one to ch[i]
                        c_out = ch[i] if k == i - j - 1 else ch[j]
                        _conv(t, f"{base}.fuse_layers.{i}.{j}.{k}.0", c_out, ch[j], 3)
                        _bn(t, f"{base}.fuse_layers.{i}.{j}.{k}.1", c_out)
    head = [32, 64, 128, 256]
    for i, c in enumerate(widths[4]):
        _bottleneck(t, f"incre_modules.{i}.0", c, head[i])
    for i in range(3):
        _conv(t, f"downsamp_modules.{i}.0", 4 * head[i + 1], 4 * head[i], 3, bias=True)
        _bn(t, f"downsamp_modules.{i}.1", 4 * head[i + 1])
    _conv(t, "final_layer.0", 2048, 1024, 1, bias=True)
    _bn(t, "final_layer.1", 2048)
    t["classifier.weight"], t["classifier.bias"] = (1000, 2048), (1000,)
    return t
