"""LAVT's multi-modal Swin: language fused into the vision encoder after every stage.

Per stage i (width C_i = embed_dim * 2^i, stride 4 * 2^i):
``x = blocks(x)``; ``r = PWAM(x, words)``; ``x = x + gate(r) * r``; the stage output for the
decoder is ``norm_i(r)`` (the language residual, not the gated sum), and the gated sum is
patch-merged into the next stage. The last stage's gate therefore never reaches an output
(its weights stay in the state dict and get no gradient, as in LAVT).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from rem_models.lavt.pwam import PWAM, LanguageGate
from rem_models.lavt.swin import PatchEmbed, PatchMerging, SwinBlock, shift_attention_mask


class FusionStage(nn.Module):
    """Swin blocks, then PWAM and the language gate, then (except last) patch merging."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window: int,
        text_dim: int,
        *,
        mlp_ratio: float = 4.0,
        drop_paths: Sequence[float] = (),
        fusion_heads: int = 1,
        fusion_dropout: float = 0.0,
        downsample: bool = True,
    ):
        super().__init__()
        self.window = window
        self.shift = window // 2
        rates = list(drop_paths) or [0.0] * depth
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                num_heads,
                window,
                shift=0 if i % 2 == 0 else window // 2,
                mlp_ratio=mlp_ratio,
                drop_path=rates[i],
            )
            for i in range(depth)
        )
        self.fusion = PWAM(dim, text_dim, fusion_heads, fusion_dropout)
        self.gate = LanguageGate(dim)
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(
        self, x: Tensor, hw: tuple[int, int], words: Tensor, word_mask: Tensor
    ) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """(B, H*W, C) -> (residual (B, H*W, C), next-stage tokens, next (H, W))."""
        h, w = hw
        hp, wp = -(-h // self.window) * self.window, -(-w // self.window) * self.window
        mask = shift_attention_mask(hp, wp, self.window, self.shift, x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, hw, mask)
        residual = self.fusion(x, words, word_mask)
        x = x + self.gate(residual) * residual
        if self.downsample is None:
            return residual, x, hw
        return residual, self.downsample(x, hw), ((h + 1) // 2, (w + 1) // 2)


class MultiModalSwin(nn.Module):
    """Image + words -> four language-aware feature maps at strides 4, 8, 16, 32.

    Input: normalised images (B, 3, H, W), word features (B, L, D) and their mask (B, L).
    Output: a list of (B, C_i, ceil(H / (4 * 2^i)), ...) maps, each ``norm_i`` of the stage's
    PWAM residual.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window_size: int,
        text_dim: int,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        fusion_heads: Sequence[int] | None = None,
        fusion_dropout: float = 0.0,
    ):
        super().__init__()
        n = len(depths)
        fusion_heads = list(fusion_heads or [1] * n)
        self.dims = [embed_dim * 2**i for i in range(n)]
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        total = sum(depths)
        # Stochastic depth grows linearly from 0 to drop_path_rate over all blocks (plain
        # Python: no tensor, so the model also builds on the meta device).
        rates = [drop_path_rate * i / max(1, total - 1) for i in range(total)]
        starts = [sum(depths[:i]) for i in range(n)]
        self.stages = nn.ModuleList(
            FusionStage(
                self.dims[i],
                depths[i],
                num_heads[i],
                window_size,
                text_dim,
                mlp_ratio=mlp_ratio,
                drop_paths=rates[starts[i] : starts[i] + depths[i]],
                fusion_heads=fusion_heads[i],
                fusion_dropout=fusion_dropout,
                downsample=i < n - 1,
            )
            for i in range(n)
        )
        self.out_norms = nn.ModuleList(nn.LayerNorm(d) for d in self.dims)

    def forward(self, images: Tensor, words: Tensor, word_mask: Tensor) -> list[Tensor]:
        x = self.patch_embed(images)
        b, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        hw = (h, w)
        outputs = []
        for stage, norm in zip(self.stages, self.out_norms, strict=True):
            residual, x_next, hw_next = stage(x, hw, words, word_mask)
            outputs.append(norm(residual).view(b, hw[0], hw[1], -1).permute(0, 3, 1, 2))
            x, hw = x_next, hw_next
        return outputs
