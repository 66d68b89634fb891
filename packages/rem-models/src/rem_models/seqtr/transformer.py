"""SeqTR's transformer: post-norm encoder over the fused map, causal decoder over tokens.

Names follow SeqTR (``encoder.layers.i.{self_attn,linear1,linear2,norm1,norm2}``, decoder
layers with ``multihead_attn`` and ``norm3``, ``decoder.norm``, ``query_embedding`` = the token
embedding, ``seq_positional_encoding.embedding`` = learned query positions,
``input_proj.{conv,gn}``) so released weights load by name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sine_positions(pad_mask: torch.Tensor, num_feats: int) -> torch.Tensor:
    """DETR's normalised 2-D sine positions: pad mask (B, H, W) True = padding -> (B, 2F, H, W).

    Coordinates are cumulative counts of valid cells scaled to (0, 2*pi]; y features first.
    """
    valid = (~pad_mask).float()
    y = valid.cumsum(1)
    x = valid.cumsum(2)
    eps, scale = 1e-6, 2 * math.pi
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=pad_mask.device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    b, h, w = pad_mask.shape
    px = x[..., None] / dim_t
    py = y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).view(b, h, w, -1)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).view(b, h, w, -1)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


class EncoderLayer(nn.Module):
    """Post-norm self-attention layer; positions are added to queries and keys only."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None
    ) -> torch.Tensor:
        q = src + pos
        attn = self.self_attn(q, q, src, key_padding_mask=key_padding_mask, need_weights=False)[0]
        src = self.norm1(src + self.dropout1(attn))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


class DecoderLayer(nn.Module):
    """Post-norm causal self-attention, cross-attention to the memory, FFN.

    With ``point_guided`` (Partial-RES), a ``point`` MLP predicts per head a centre and a scale
    from the query and the cross-attention logits of the h*w image tokens get the SMCA
    Gaussian -sum(((p - grid - 0.5) * scale)^2) / 8 (the sentence token gets no bias).
    """

    def __init__(
        self, d_model: int, num_heads: int, ffn_dim: int, dropout: float, point_guided: bool = False
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        if point_guided:
            self.point = nn.Sequential(
                nn.Linear(d_model, 128),
                nn.ReLU(),
                nn.Linear(128, 64),
                nn.ReLU(),
                nn.Linear(64, 4 * num_heads),
            )
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d_model, num_heads, dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        if point_guided:
            nn.init.zeros_(self.point[4].bias)

    def gaussian_bias(self, tgt: torch.Tensor, grid_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, d) queries, (B, h, w) image pad mask -> (B, heads, L, h*w) logit bias."""
        b, length, _ = tgt.shape
        _, h, w = grid_mask.shape
        out = self.point(tgt).reshape(b, length, 2, self.num_heads, 2)
        centre = out[:, :, 0].sigmoid()  # (B, L, heads, 2) as (x, y) in [0, 1]
        scale = out[:, :, 1]
        valid_w = (~grid_mask[:, 0, :]).sum(1).float() / w
        valid_h = (~grid_mask[:, :, 0]).sum(1).float() / h
        size = torch.stack([valid_w * w, valid_h * h], -1)  # feature size x valid ratio
        centre = centre * size[:, None, None, :]
        gy, gx = torch.meshgrid(
            torch.arange(h, device=tgt.device), torch.arange(w, device=tgt.device), indexing="ij"
        )
        grid = torch.stack([gx, gy], -1).reshape(-1, 2).float() + 0.5  # (hw, 2)
        dist = (centre[:, :, :, None, :] - grid) ** 2 * scale[:, :, :, None, :] ** 2
        return -dist.sum(-1).permute(0, 2, 1, 3) / 8.0

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        query_pos: torch.Tensor,
        causal_mask: torch.Tensor,
        memory_padding_mask: torch.Tensor | None,
        grid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = tgt + query_pos
        attn = self.self_attn(q, q, tgt, attn_mask=causal_mask, need_weights=False)[0]
        tgt = self.norm1(tgt + self.dropout1(attn))
        key_mask, bias = memory_padding_mask, None
        if hasattr(self, "point") and grid_mask is not None:
            b, length = tgt.shape[:2]
            gauss = self.gaussian_bias(tgt, grid_mask)
            bias = tgt.new_zeros((b, self.num_heads, length, memory.shape[1]))
            bias[..., : gauss.shape[-1]] = gauss
            if memory_padding_mask is not None:
                bias = bias.masked_fill(memory_padding_mask[:, None, None, :], float("-inf"))
            bias = bias.reshape(b * self.num_heads, length, memory.shape[1])
            key_mask = None
        attn = self.multihead_attn(
            tgt + query_pos,
            memory + memory_pos,
            memory,
            key_padding_mask=key_mask,
            attn_mask=bias,
            need_weights=False,
        )[0]
        tgt = self.norm2(tgt + self.dropout2(attn))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(ffn))


class _Layers(nn.Module):
    """A named container (``layers`` [+ ``norm``]) so parameter names match SeqTR's."""

    def __init__(self, layers: list[nn.Module], norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        if norm is not None:
            self.norm = norm


class _LearnedPositions(nn.Module):
    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num, dim)


class _InputProj(nn.Module):
    def __init__(self, in_ch: int, d_model: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, d_model, 1)
        self.gn = nn.GroupNorm(groups, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gn(self.conv(x))


class SeqTransformer(nn.Module):
    """Encoder-decoder over the fused map (B, C, h, w) and token embeddings (B, L, d).

    ``num_queries`` rows of learned query positions (5 for boxes, 2*num_ray+1 for contours);
    ``vocab_size`` token embeddings (bins + END).
    """

    def __init__(
        self,
        in_ch: int,
        vocab_size: int,
        num_queries: int,
        d_model: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        encoder_layers: int = 6,
        decoder_layers: int = 3,
        dropout: float = 0.1,
        gn_groups: int = 32,
        partial_res: bool = False,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.partial_res = partial_res
        self.encoder = _Layers(
            [EncoderLayer(d_model, num_heads, ffn_dim, dropout) for _ in range(encoder_layers)]
        )
        self.decoder = _Layers(
            [
                DecoderLayer(d_model, num_heads, ffn_dim, dropout, partial_res)
                for _ in range(decoder_layers)
            ],
            nn.LayerNorm(d_model),
        )
        for p in self.parameters():  # SeqTR re-initialises the layers' matrices
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        # Partial-RES zero-initialises the last point layer, but this xavier pass then redraws
        # its weight (only the bias stays zero). That matters: the Gaussian is quadratic in
        # the predicted scale, so an all-zero layer would get zero gradient forever.
        self.query_embedding = nn.Embedding(vocab_size, d_model)
        if partial_res:  # Partial-RES: a learned start token for contours
            self.task_prompt = nn.Embedding(1, d_model)
        self.seq_positional_encoding = _LearnedPositions(num_queries, d_model)
        self.input_proj = _InputProj(in_ch, d_model, gn_groups)

    def encode(
        self, x: torch.Tensor, pad_mask: torch.Tensor, language: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(memory (B, hw[+1], d), positions, key padding mask (B, hw[+1])).

        ``language`` (B, C) is Partial-RES's sentence token: appended after the h*w image
        tokens with a zero position and never masked; GroupNorm sees all hw+1 tokens.
        """
        b = x.shape[0]
        pos = sine_positions(pad_mask, self.d_model // 2).flatten(2).transpose(1, 2)
        flat_mask = pad_mask.flatten(1)
        tokens = x.flatten(2)
        if language is not None:
            tokens = torch.cat([tokens, language[:, :, None]], dim=2)
            pos = torch.cat([pos, pos.new_zeros((b, 1, pos.shape[2]))], dim=1)
            flat_mask = torch.cat([flat_mask, flat_mask.new_zeros((b, 1))], dim=1)
        memory = self.input_proj(tokens[..., None]).flatten(2).transpose(1, 2)
        for layer in self.encoder.layers:
            memory = layer(memory, pos, flat_mask)
        return memory.reshape(b, -1, self.d_model), pos, flat_mask

    def decode(
        self,
        seq_embeds: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        memory_mask: torch.Tensor,
        grid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Causally decode token embeddings (B, L, d) -> hidden states (B, L, d).

        ``grid_mask`` (B, h, w), the image pad mask, switches on the point-guided attention.
        """
        length = seq_embeds.shape[1]
        query_pos = self.seq_positional_encoding.embedding.weight[:length][None]
        causal = torch.triu(
            torch.full((length, length), float("-inf"), device=seq_embeds.device), diagonal=1
        )
        out = seq_embeds
        for layer in self.decoder.layers:
            out = layer(out, memory, memory_pos, query_pos, causal, memory_mask, grid_mask)
        return self.decoder.norm(out)
