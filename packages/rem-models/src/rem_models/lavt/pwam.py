"""LAVT's language fusion: the pixel-word attention module (PWAM) and the language gate.

Each pixel attends over the words of its sentence; the attended language feature is multiplied
into a projection of the pixel and projected again. LAVT's 1x1 Conv1d layers are Linear layers
here (same weights, squeezed); its InstanceNorm1d layers normalise each channel over the H*W
positions of one sample (no affine parameters, eps 1e-5, even in eval mode).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

# Added to the scores of padding words (LAVT: sim + (1e4 * mask - 1e4)).
_PAD_SCORE = 1e4
_INSTANCE_NORM_EPS = 1e-5


def instance_norm_tokens(x: Tensor) -> Tensor:
    """Normalise (B, HW, C) tokens per sample and channel over the HW positions (biased var)."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / (var + _INSTANCE_NORM_EPS).sqrt()


class PixelWordAttention(nn.Module):
    """Pixels (queries) attend over words (keys, values): LAVT's SpatialImageLanguageAttention.

    The scores are scaled by ``dim ** -0.5`` over the full width, whatever the number of heads,
    and keys and values of padding words are zeroed as well as pushed to -1e4.
    """

    def __init__(self, dim: int, text_dim: int, num_heads: int = 1):
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(text_dim, dim)
        self.value = nn.Linear(text_dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, words: Tensor, word_mask: Tensor) -> Tensor:
        """``x``: (B, HW, C) pixels; ``words``: (B, L, D); ``word_mask``: (B, L) 1 = real word."""
        b, hw, c = x.shape
        heads = self.num_heads
        mask = word_mask.to(x.dtype)
        query = instance_norm_tokens(self.query(x)).view(b, hw, heads, c // heads).transpose(1, 2)
        key = (self.key(words) * mask[..., None]).view(b, -1, heads, c // heads).transpose(1, 2)
        value = (self.value(words) * mask[..., None]).view(b, -1, heads, c // heads).transpose(1, 2)
        scores = (query @ key.transpose(-2, -1)) * c**-0.5  # (B, heads, HW, L)
        scores = scores + (_PAD_SCORE * mask - _PAD_SCORE)[:, None, None, :]
        attended = F.softmax(scores, dim=-1) @ value  # (B, heads, HW, C / heads)
        attended = attended.transpose(1, 2).reshape(b, hw, c)
        return instance_norm_tokens(self.out(attended))


class PWAM(nn.Module):
    """GELU(proj(pixel)) * attended words -> GELU(proj): the language residual of a stage.

    Returns (B, HW, C); LAVT's decoder reads this residual (after the stage norm), while the
    next stage reads the gated sum (see :class:`LanguageGate`).
    """

    def __init__(self, dim: int, text_dim: int, num_heads: int = 1, dropout: float = 0.0):
        super().__init__()
        self.visual_proj = nn.Linear(dim, dim)
        self.attention = PixelWordAttention(dim, text_dim, num_heads)
        self.mix_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, words: Tensor, word_mask: Tensor) -> Tensor:
        visual = self.dropout(F.gelu(self.visual_proj(x)))
        mixed = visual * self.attention(x, words, word_mask)
        return self.dropout(F.gelu(self.mix_proj(mixed)))


class LanguageGate(nn.Module):
    """Per-channel gate in (-1, 1): Linear -> ReLU -> Linear -> tanh, no biases."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim, bias=False)
        self.fc2 = nn.Linear(dim, dim, bias=False)

    def forward(self, residual: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(residual))).tanh()
