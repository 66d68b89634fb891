"""Registered SeqTR variants.

``seqtr_rec`` / ``seqtr_res`` are the published DarkNet-53 models (REC: box task; RES: mask
task with num_ray 18 as for RefCOCO; ``seqtr_res12`` uses the 12 rays of the RefCOCO+/g
pipelines). SeqTR's weights are shared on Baidu Pan only, which serves no direct file URL, so
there are no :class:`~rem_models.weights.Weights` records: download by hand and convert with
``rem seqtr convert`` (which reads num_ray and the vocabulary size from the file) or
``rem convert-checkpoint seqtr_res FILE OUT --set model.language.vocab_size=V``.
``pres_res`` is Partial-RES's RES model (no released weights; SeqTR REC weights initialise it
non-strictly). ``seqtr_test_box`` / ``seqtr_test_mask`` / ``pres_test_mask`` are tiny networks
for CPU tests. Every variant trains with SeqTR's recipe (``train_config.py``) through
``rem train MODEL --refs ...`` (``train_run.py``).
"""

from __future__ import annotations

from rem_models.registry import register_model
from rem_models.seqtr.build import build_seqtr
from rem_models.seqtr.config import DarkNetConfig, HeadConfig, LanguageConfig, SeqTRConfig
from rem_models.seqtr.convert import convert_seqtr_state_dict
from rem_models.seqtr.model import SeqTR


def _tiny(task: str, partial_res: bool = False) -> SeqTRConfig:
    return SeqTRConfig(
        task=task,  # type: ignore[arg-type]
        partial_res=partial_res,
        num_ray=8,
        input_size=64,
        vision=DarkNetConfig(stem=4, blocks=[1, 1, 1, 1, 1], extra_blocks=1, trainable_modules=14),
        language=LanguageConfig(
            vocab_size=32, embed_dim=16, hidden_size=64, max_tokens=8, freeze_embedding=False
        ),
        head=HeadConfig(
            d_model=64,
            num_heads=4,
            ffn_dim=128,
            encoder_layers=1,
            decoder_layers=2,
            dropout=0.0,
            gn_groups=8,
            num_bins=32,
        ),
    )


@register_model("seqtr_rec", config=SeqTRConfig(task="box"), converter=convert_seqtr_state_dict)
def seqtr_rec(config: SeqTRConfig) -> SeqTR:
    """SeqTR REC (box task), DarkNet-53 + bi-GRU, 1000 bins."""
    return build_seqtr(config)


@register_model(
    "seqtr_res", config=SeqTRConfig(task="mask", num_ray=18), converter=convert_seqtr_state_dict
)
def seqtr_res(config: SeqTRConfig) -> SeqTR:
    """SeqTR RES (mask task, 18 contour points: RefCOCO)."""
    return build_seqtr(config)


@register_model(
    "seqtr_res12",
    config=SeqTRConfig(task="mask", num_ray=12, language=LanguageConfig(max_tokens=20)),
    converter=convert_seqtr_state_dict,
)
def seqtr_res12(config: SeqTRConfig) -> SeqTR:
    """SeqTR RES with 12 contour points (RefCOCO+ / RefCOCOg pipelines)."""
    return build_seqtr(config)


@register_model("seqtr_test_box", config=_tiny("box"), converter=convert_seqtr_state_dict)
def seqtr_test_box(config: SeqTRConfig) -> SeqTR:
    """Tiny SeqTR (box task) for CPU tests."""
    return build_seqtr(config)


@register_model("seqtr_test_mask", config=_tiny("mask"), converter=convert_seqtr_state_dict)
def seqtr_test_mask(config: SeqTRConfig) -> SeqTR:
    """Tiny SeqTR (mask task, 8 contour points) for CPU tests."""
    return build_seqtr(config)


@register_model(
    "pres_res",
    config=SeqTRConfig(task="mask", num_ray=12, partial_res=True),
    converter=convert_seqtr_state_dict,
)
def pres_res(config: SeqTRConfig) -> SeqTR:
    """Partial-RES RES head on SeqTR (12 contour points; set num_ray=18 for RefCOCO)."""
    return build_seqtr(config)


@register_model("pres_test_mask", config=_tiny("mask", True), converter=convert_seqtr_state_dict)
def pres_test_mask(config: SeqTRConfig) -> SeqTR:
    """Tiny Partial-RES (mask task) for CPU tests."""
    return build_seqtr(config)
