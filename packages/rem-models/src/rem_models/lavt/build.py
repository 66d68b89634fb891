"""Assembling a :class:`~rem_models.lavt.model.LAVT` from a :class:`LavtConfig`."""

from __future__ import annotations

from rem_models.lavt.backbone import MultiModalSwin
from rem_models.lavt.config import LavtConfig
from rem_models.lavt.decoder import SimpleDecoder
from rem_models.lavt.model import LAVT
from rem_models.lavt.text import TextEncoder


def build_lavt(config: LavtConfig) -> LAVT:
    """LAVT with fresh weights (PyTorch / transformers default initialisation)."""
    s = config.swin
    backbone = MultiModalSwin(
        embed_dim=s.embed_dim,
        depths=s.depths,
        num_heads=s.num_heads,
        window_size=s.window_size,
        text_dim=config.text.hidden_size,
        patch_size=s.patch_size,
        mlp_ratio=s.mlp_ratio,
        drop_path_rate=s.drop_path_rate,
        fusion_heads=s.fusion_heads,
        fusion_dropout=s.fusion_dropout,
    )
    hidden = config.decoder_hidden or 4 * s.embed_dim
    decoder = SimpleDecoder(backbone.dims, hidden)
    return LAVT(
        backbone,
        decoder,
        TextEncoder(config.text),
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
        image_size=config.image_size,
    )
