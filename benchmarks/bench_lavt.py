"""LAVT inference speed at 480 x 480 on the CPU: rem's model vs LAVT's op order, same run.

Both sides run the same ``lavt`` network (Swin-B window 12 + PWAMs + BERT-base, 227.7 M
parameters) with the same random weights on the same inputs (one image, one 20-token sentence
per forward, batch 1, float32, ``torch.inference_mode``). The peer computes the forward in the
order LAVT's code does: window attention as matmul + softmax with the bias (and shift mask)
broadcast, the PWAM projections as 1x1 ``conv1d`` with ``instance_norm``, and BERT with eager
attention. rem's model uses fused scaled-dot-product attention (with the window masks expanded
to the batch shape, which selects PyTorch's fast CPU kernel) and linear layers. The logits of
the two are compared. No LAVT weights can be downloaded here; the compute does not depend on
the weights' values.

``--quick`` / REM_BENCH_QUICK=1 runs the tiny ``lavt_test`` network on 2 images of 240 x 240.

Usage: python benchmarks/bench_lavt.py [--quick] [--out DIR] [--images N]
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from script_args import emit, parser, quick_mode


def _explicit_window_attention(attn, x, batch, mask):
    bw, n, c = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
    scores = q @ k.transpose(-2, -1)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
    scores = scores + bias.view(n, n, heads).permute(2, 0, 1)[None]
    if mask is not None:
        nw = mask.shape[0]
        scores = scores.view(bw // nw, nw, heads, n, n) + mask[None, :, None]
        scores = scores.view(bw, heads, n, n)
    return attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c))


def _block(block, x, hw, mask):
    from rem_models.lavt.swin import window_merge, window_partition

    b, _, c = x.shape
    h, w = hw
    win = block.window
    y = block.norm1(x).view(b, h, w, c)
    pad_b, pad_r = (-h) % win, (-w) % win
    y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
    if block.shift:
        y = torch.roll(y, (-block.shift, -block.shift), (1, 2))
    y = _explicit_window_attention(
        block.attn, window_partition(y, win), b, mask if block.shift else None
    )
    y = window_merge(y, win, h + pad_b, w + pad_r)
    if block.shift:
        y = torch.roll(y, (block.shift, block.shift), (1, 2))
    x = x + y[:, :h, :w].reshape(b, h * w, c)
    return x + block.mlp(block.norm2(x))


def _conv(linear, x):  # (B, C, L) through a Linear's weights as a 1x1 Conv1d
    return F.conv1d(x, linear.weight[..., None], linear.bias)


def _pwam(fusion, x, words, word_mask):
    att = fusion.attention
    b, hw, c = x.shape
    heads = att.num_heads
    xc, lc = x.transpose(1, 2), words.transpose(1, 2)
    m = word_mask[:, None, :].to(x.dtype)
    query = F.instance_norm(_conv(att.query, xc)).transpose(1, 2)
    key, value = _conv(att.key, lc) * m, _conv(att.value, lc) * m
    query = query.reshape(b, hw, heads, c // heads).permute(0, 2, 1, 3)
    key = key.reshape(b, heads, c // heads, -1)
    value = value.reshape(b, heads, c // heads, -1)
    scores = (query @ key) * c**-0.5 + (1e4 * m[:, None] - 1e4)
    out = (scores.softmax(-1) @ value.transpose(-2, -1)).permute(0, 2, 1, 3).reshape(b, hw, c)
    lang = F.instance_norm(_conv(att.out, out.transpose(1, 2)))
    vis = F.gelu(_conv(fusion.visual_proj, xc))
    return F.gelu(_conv(fusion.mix_proj, vis * lang)).transpose(1, 2)


def peer_forward(model, images, ids, mask):
    """LAVT's op order over the same modules and weights (see the module docstring)."""
    from rem_models.lavt.swin import shift_attention_mask

    model.text_encoder.bert.config._attn_implementation = "eager"
    try:
        words = model.text_encoder.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    finally:
        model.text_encoder.bert.config._attn_implementation = "sdpa"
    x = model.backbone.patch_embed(model.normalize(images))
    b, _, h, w = x.shape
    x, hw, outs = x.flatten(2).transpose(1, 2), (h, w), []
    for stage, norm in zip(model.backbone.stages, model.backbone.out_norms, strict=True):
        win = stage.window
        hp, wp = -(-hw[0] // win) * win, -(-hw[1] // win) * win
        shift_mask = shift_attention_mask(hp, wp, win, stage.shift, x.device)
        for block in stage.blocks:
            x = _block(block, x, hw, shift_mask)
        residual = _pwam(stage.fusion, x, words, mask)
        x = x + stage.gate(residual) * residual
        outs.append(norm(residual).view(b, hw[0], hw[1], -1).permute(0, 3, 1, 2))
        if stage.downsample is not None:
            x = stage.downsample(x, hw)
            hw = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    logits = model.decoder(outs)
    return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=True)


def _time(fn, inputs) -> tuple[float, list[torch.Tensor]]:
    outs = [fn(*inputs[0])]  # warm-up (allocator, kernels), not timed
    start = time.perf_counter()
    outs = [fn(*args) for args in inputs[1:]]
    return time.perf_counter() - start, outs


def main(out_dir: Path, *, quick: bool | None = None, images: int | None = None) -> dict:
    from rem_models import get_model

    quick = quick_mode(quick)
    arch = "lavt_test" if quick else "lavt"
    count = images or (2 if quick else 3)
    torch.manual_seed(0)
    model = get_model(arch).eval()
    size = 240 if quick else 480
    gen = torch.Generator().manual_seed(0)
    vocab = model.text_encoder.config.vocab_size
    inputs = []
    for _ in range(count + 1):
        ids = torch.randint(1000 % vocab, vocab, (1, 20), generator=gen)
        ids[0, 0], ids[0, -1] = 101 % vocab, 102 % vocab
        inputs.append(
            (
                torch.rand(1, 3, size, size, generator=gen) * 255,
                ids,
                torch.ones(1, 20, dtype=torch.int64),
            )
        )
    with torch.inference_mode():
        ours_s, ours = _time(model, inputs)
        peer_s, peer = _time(lambda *a: peer_forward(model, *a), inputs)
    diff = max((a - b).abs().max().item() for a, b in zip(ours, peer, strict=True))
    agree = min(
        float((a.argmax(1) == b.argmax(1)).float().mean()) for a, b in zip(ours, peer, strict=True)
    )
    figures = {
        "model": arch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "image_size": size,
        "images_timed": count,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "rem_images_per_s": count / ours_s,
        "lavt_order_images_per_s": count / peer_s,
        "speedup_vs_lavt_order": peer_s / ours_s,
        "max_abs_logit_diff": diff,
        "mask_agreement_min": agree,
        "quick": quick,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lavt.json").write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--images", type=int, default=None)
    args = p.parse_args()
    emit(main(args.out, quick=args.quick or None, images=args.images))
