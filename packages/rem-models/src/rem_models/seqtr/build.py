"""Build a SeqTR network from its config."""

from __future__ import annotations

from rem_models.seqtr.config import SeqTRConfig
from rem_models.seqtr.darknet import DarkNet53
from rem_models.seqtr.fusion import SimpleFusion
from rem_models.seqtr.head import SeqHead
from rem_models.seqtr.language import LanguageEncoder
from rem_models.seqtr.model import SeqTR
from rem_models.seqtr.transformer import SeqTransformer


def build_seqtr(config: SeqTRConfig) -> SeqTR:
    """A freshly initialised SeqTR for ``config`` (no pretrained weights loaded)."""
    v, lang, h = config.vision, config.language, config.head
    vis = DarkNet53(v.stem, tuple(v.blocks), v.extra_blocks, v.trainable_modules)
    top = v.out_channels[2]
    if 2 * lang.hidden_size != top:
        raise ValueError(
            f"the sentence feature (2 x {lang.hidden_size}) must match the top visual width {top}"
        )
    transformer = SeqTransformer(
        in_ch=top,
        vocab_size=h.num_bins + 1,
        num_queries=config.sequence_length + 1,
        d_model=h.d_model,
        num_heads=h.num_heads,
        ffn_dim=h.ffn_dim,
        encoder_layers=h.encoder_layers,
        decoder_layers=h.decoder_layers,
        dropout=h.dropout,
        gn_groups=h.gn_groups,
        partial_res=config.partial_res,
    )
    head = SeqHead(
        transformer,
        h.num_bins,
        config.sequence_length,
        config.task,
        config.box_x1_weight,
        config.end_weight,
        config.label_smoothing,
    )
    return SeqTR(
        vis,
        LanguageEncoder(lang.vocab_size, lang.embed_dim, lang.hidden_size, lang.freeze_embedding),
        SimpleFusion(v.out_channels),
        head,
        task=config.task,
        num_ray=config.num_ray,
        shuffle_fraction=config.shuffle_fraction,
        size_divisor=config.size_divisor,
        input_size=config.input_size,
    )
