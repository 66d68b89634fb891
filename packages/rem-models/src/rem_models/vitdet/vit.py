"""The plain ViT backbone of ViTDet: MAE-style blocks, windowed attention with a few global
blocks, decomposed relative positions and a resized absolute position embedding.

Tokens are kept as a ``(B, H, W, C)`` grid throughout, so window partitioning is a reshape.
Window blocks zero-pad the grid to a multiple of the window (64 -> 70 for window 14 at
1024 px): padded tokens take part as keys without any mask and are cropped afterwards, exactly
as in detectron2, so pretrained weights see the inputs they were trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """Split a (B, H, W, C) grid into (B * nW, window, window, C) windows.

    The grid is zero-padded at the bottom/right to a multiple of ``window``; the padded
    size (Hp, Wp) is returned for :func:`window_unpartition`.
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window, window, C) -> (B, H, W, C)."""
    hp, wp = padded
    h, w = size
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w].contiguous() if (hp > h or wp > w) else x


def relative_position_embeddings(q_size: int, k_size: int, table: Tensor) -> Tensor:
    """``(q_size, k_size, C)`` embeddings of every query-key offset along one axis.

    ``table`` (L, C) holds one embedding per offset; it is resized linearly when L differs
    from ``2 * max(q_size, k_size) - 1`` (e.g. a 14-window model run with another window).
    """
    length = 2 * max(q_size, k_size) - 1
    if table.shape[0] != length:
        table = F.interpolate(table.T[None], size=length, mode="linear")[0].T
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=table.device)[:, None] * q_scale
    k_coords = torch.arange(k_size, device=table.device)[None, :] * k_scale
    offsets = (q_coords - k_coords) + (k_size - 1) * k_scale
    return table[offsets.long()]


def decomposed_rel_pos_bias(
    q: Tensor,
    rel_pos_h: Tensor,
    rel_pos_w: Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> Tensor:
    """Additive attention bias of MViTv2's decomposed relative positions.

    ``q`` is (..., q_h * q_w, C) (unscaled queries); returns (..., q_h * q_w, k_h * k_w):
    ``bias[i, j] = q_i . R_h[row(i) - row(j)] + q_i . R_w[col(i) - col(j)]``.
    """
    q_h, q_w = q_size
    k_h, k_w = k_size
    r_h = relative_position_embeddings(q_h, k_h, rel_pos_h)
    r_w = relative_position_embeddings(q_w, k_w, rel_pos_w)
    *lead, _, c = q.shape
    grid_q = q.reshape(-1, q_h, q_w, c)
    rel_h = torch.einsum("nhwc,hkc->nhwk", grid_q, r_h)
    rel_w = torch.einsum("nhwc,wkc->nhwk", grid_q, r_w)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(*lead, q_h * q_w, k_h * k_w)


def resize_abs_pos(pos_embed: Tensor, has_cls_token: bool, size: tuple[int, int]) -> Tensor:
    """The pretraining position embedding (1, [1 +] S*S, C) as a (1, H, W, C) grid.

    The cls token's entry is dropped and the S x S grid is resized bicubically when the token
    grid differs (MAE's 14 x 14 at 224 px -> 64 x 64 at 1024 px).
    """
    if has_cls_token:
        pos_embed = pos_embed[:, 1:]
    side = math.isqrt(pos_embed.shape[1])
    if side * side != pos_embed.shape[1]:
        raise ValueError(f"position embedding of {pos_embed.shape[1]} tokens is not a square grid")
    h, w = size
    grid = pos_embed.reshape(1, side, side, -1)
    if (side, side) == (h, w):
        return grid
    grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1)


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zero a residual branch per sample with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) grid with decomposed relative positions.

    ``input_size`` is the (H, W) the relative-position tables are sized for: the window for
    window blocks, the full token grid for global blocks.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        use_rel_pos: bool = True,
        input_size: tuple[int, int] = (14, 14),
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            # Zero init: MAE checkpoints have no relative positions, so training starts from
            # pure absolute positions.
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, H*W, head_dim)
        bias = None
        if self.use_rel_pos:
            bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w))
            bias = bias.to(q.dtype)
        # Softmax(q k^T / sqrt(d) + bias) v, without materialising the softmax twice.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class Mlp(nn.Module):
    """Two-layer feed-forward block with exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; ``window_size`` 0 means global attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        use_rel_pos: bool = True,
        window_size: int = 0,
        input_size: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        rel_size = input_size if window_size == 0 else (window_size, window_size)
        self.attn = Attention(dim, num_heads, qkv_bias, use_rel_pos, rel_size)
        self.drop_path = drop_path
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            size = (x.shape[1], x.shape[2])
            x, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded, size)
        else:
            x = self.attn(x)
        x = shortcut + drop_path(x, self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class ViT(nn.Module):
    """Plain ViT (no final norm) returning the stride-``patch_size`` feature map.

    Input: normalised images (B, 3, H, W), H and W multiples of ``patch_size``.
    Output: (B, embed_dim, H / patch_size, W / patch_size).
    ``window_block_indexes`` lists the blocks using window attention; the others are global.
    Drop-path rates grow linearly from 0 to ``drop_path_rate`` over the depth.
    """

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        use_abs_pos: bool = True,
        use_rel_pos: bool = True,
        window_size: int = 0,
        window_block_indexes: Sequence[int] = (),
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        use_act_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.pos_embed: nn.Parameter | None = None
        if use_abs_pos:
            # Sized for the pretraining grid (+ cls token) so MAE weights load unchanged.
            num_positions = (pretrain_img_size // patch_size) ** 2 + int(pretrain_use_cls_token)
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        grid = (img_size // patch_size, img_size // patch_size)
        windowed = set(window_block_indexes)
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                rates[i],
                norm_eps,
                use_rel_pos,
                window_size if i in windowed else 0,
                grid,
            )
            for i in range(depth)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialisation for training without pretrained weights (truncated normal 0.02)."""
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images).permute(0, 2, 3, 1)
        if self.pos_embed is not None:
            x = x + resize_abs_pos(self.pos_embed, self.pretrain_use_cls_token, x.shape[1:3])
        for block in self.blocks:
            if self.use_act_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x.permute(0, 3, 1, 2)
