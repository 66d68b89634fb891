"""Typed configuration of LAVT; defaults are the published Swin-B (window 12) + BERT-base model.

The numbers mirror LAVT's ``lib/segmentation.py`` (``--swin_type base --window12``) and the
``BertConfig()`` defaults (bert-base-uncased). ``text.hidden_size`` is a config value (LAVT
hard-codes 768 in its PWAMs) so that tests can drive the model with a small BERT.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from rem_models.registry import ModelConfig


class SwinConfig(ModelConfig):
    """The multi-modal Swin backbone: Swin stages, each followed by a PWAM and a language gate."""

    embed_dim: int = Field(128, gt=0)
    # Four stages: the decoder fuses exactly four scales (1/4 .. 1/32).
    depths: list[int] = Field(default_factory=lambda: [2, 2, 18, 2], min_length=4, max_length=4)
    num_heads: list[int] = Field(default_factory=lambda: [4, 8, 16, 32], min_length=4, max_length=4)
    window_size: int = Field(12, gt=0, description="7 for the window-7 ImageNet weights")
    patch_size: int = Field(4, gt=0)
    mlp_ratio: float = Field(4.0, gt=0)
    drop_path_rate: float = Field(0.3, ge=0, lt=1)
    fusion_heads: list[int] = Field(
        default_factory=lambda: [1, 1, 1, 1], description="PWAM heads per stage (LAVT --mha)"
    )
    fusion_dropout: float = Field(0.0, ge=0, lt=1, description="LAVT --fusion_drop")

    @model_validator(mode="after")
    def _check(self) -> SwinConfig:
        n = len(self.depths)
        if len(self.num_heads) != n or len(self.fusion_heads) != n:
            raise ValueError("depths, num_heads and fusion_heads need one entry per stage")
        for i, (heads, fusion) in enumerate(zip(self.num_heads, self.fusion_heads, strict=True)):
            dim = self.embed_dim * 2**i
            if dim % heads or dim % fusion:
                raise ValueError(
                    f"stage {i}: width {dim} not divisible by {heads} / {fusion} heads"
                )
        return self


class TextConfig(ModelConfig):
    """The BERT text encoder and LAVT's tokenisation."""

    vocab_size: int = Field(30522, gt=0)
    hidden_size: int = Field(768, gt=0, description="BERT width = PWAM text width")
    num_layers: int = Field(12, gt=0)
    num_heads: int = Field(12, gt=0)
    intermediate_size: int = Field(3072, gt=0)
    max_position_embeddings: int = Field(512, gt=0)
    type_vocab_size: int = Field(2, gt=0)
    layer_norm_eps: float = Field(1e-12, gt=0)
    hidden_dropout: float = Field(0.1, ge=0, lt=1)
    attention_dropout: float = Field(0.1, ge=0, lt=1)
    max_tokens: int = Field(20, gt=1, description="LAVT truncates [CLS] ... [SEP] to 20 ids")
    tokenizer: str = Field(
        "bert-base-uncased",
        description="a vocab.txt file, a folder holding one, or a Hugging Face tokenizer name",
    )
    lowercase: bool = True

    @model_validator(mode="after")
    def _check(self) -> TextConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} not divisible by {self.num_heads} heads"
            )
        if self.max_tokens > self.max_position_embeddings:
            raise ValueError("max_tokens exceeds max_position_embeddings")
        return self


class LavtConfig(ModelConfig):
    """LAVT: backbone, decoder, text encoder and the input convention."""

    swin: SwinConfig = Field(default_factory=SwinConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    decoder_hidden: int | None = Field(
        None, gt=0, description="decoder width; None = 4 * embed_dim (LAVT: 8*C // 2)"
    )
    image_size: int = Field(480, gt=0, description="square network input (aspect not kept)")
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
