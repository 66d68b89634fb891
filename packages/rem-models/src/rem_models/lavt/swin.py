"""Swin Transformer pieces as LAVT uses them (the detection/segmentation flavour of Swin).

Unlike the classification Swin, the window is never shrunk for small maps: a feature map is
zero-padded (after ``norm1``) to a multiple of the window, padded tokens take part in attention
as unmasked keys, and the shifted-window mask (-100 between regions) is built on the padded
grid. Token layouts are (B, H*W, C) in row-major order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SHIFT_MASK_VALUE = -100.0


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


def relative_position_index(window: int) -> Tensor:
    """(w*w, w*w) row of each token pair's offset in the (2w-1)^2 bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    coords = coords.flatten(1)  # (2, w*w): (row, col) of each token
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` -> (B * nW, window * window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_merge(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def shift_attention_mask(
    hp: int, wp: int, window: int, shift: int, device: torch.device | None = None
) -> Tensor:
    """(nW, N, N) additive mask for shifted windows on the padded (hp, wp) grid.

    After the cyclic shift a window may join tokens from up to three regions per axis; pairs
    from different regions get -100 (Swin's value), pairs from the same region 0.
    """
    labels = torch.zeros(1, hp, wp, 1, device=device)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = 0
    for rows in bands:
        for cols in bands:
            labels[:, rows, cols, :] = region
            region += 1
    windows = window_partition(labels, window).squeeze(-1)  # (nW, N)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.where(diff != 0, SHIFT_MASK_VALUE, 0.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative-position bias."""

    def __init__(self, dim: int, num_heads: int, window: int):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # Derived from ``window`` alone, so it is not saved (LAVT's files carry it; the
        # converter checks it equals this one).
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False
        )

    def forward(self, x: Tensor, batch: int, mask: Tensor | None = None) -> Tensor:
        """``x``: (batch * nW, N, C) window tokens; ``mask``: (nW, N, N) additive or None."""
        bw, n, c = x.shape
        nw = bw // batch
        heads = self.num_heads
        qkv = self.qkv(x).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, heads).permute(2, 0, 1)  # (heads, N, N)
        # The masks are expanded to the full batch shape (a view, no copy): with a mask that
        # merely broadcasts, PyTorch's CPU attention falls back to a path ~5x slower.
        if mask is None:
            q, k, v = qkv.unbind(0)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.expand(bw, heads, n, n))
        else:
            # Fold windows into the head axis so one (nW * heads, N, N) mask serves the batch.
            q, k, v = (t.reshape(batch, nw * heads, n, c // heads) for t in qkv)
            full = (bias[None] + mask[:, None].to(bias.dtype)).reshape(nw * heads, n, n)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=full.expand(batch, nw * heads, n, n)
            )
            out = out.view(bw, heads, n, c // heads)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each a residual with stochastic depth."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int,
        shift: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window {window})")
        self.window = window
        self.shift = shift
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, hw: tuple[int, int], shift_mask: Tensor | None) -> Tensor:
        """``x``: (B, H*W, C); ``shift_mask``: the stage's (nW, N, N) mask (used if shifted)."""
        b, _, c = x.shape
        h, w = hw
        win = self.window
        y = self.norm1(x).view(b, h, w, c)
        pad_b, pad_r = (-h) % win, (-w) % win
        y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))  # zeros after the norm, as LAVT
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, win), b, shift_mask if self.shift else None)
        y = window_merge(y, win, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        y = y[:, :h, :w, :].reshape(b, h * w, c)
        x = x + drop_path(y, self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: (B, 3, H, W) -> (B, C, ceil(H/p), ceil(W/p))."""

    def __init__(self, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % p, 0, (-h) % p))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PatchMerging(nn.Module):
    """2x2 neighbourhoods -> one token of twice the width.

    (B, H*W, C) -> (B, ceil(H/2) * ceil(W/2), 2C); odd sizes are zero-padded first.

    The four neighbours are concatenated as (even row, even col), (odd, even), (even, odd),
    (odd, odd), the order the released weights expect.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        b, _, c = x.shape
        h, w = hw
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        parts = (x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2])
        x = torch.cat(parts, dim=-1).view(b, -1, 4 * c)
        return self.reduction(self.norm(x))
