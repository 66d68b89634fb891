"""Typed configuration of SeqTR; defaults are the published DarkNet-53 RefCOCO model.

The numbers mirror SeqTR's ``configs/seqtr/{detection,segmentation}/*darknet*.py``. Widths and
block counts are config values so tests can build a network small enough for a CPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rem_models.registry import ModelConfig


class DarkNetConfig(ModelConfig):
    """DarkNet-53 plus SeqTR's extra layers; the three outputs are 8x, 16x and 32x ``stem``."""

    stem: int = Field(32, gt=0, description="width of the first conv; stage widths double")
    blocks: list[int] = Field(default_factory=lambda: [1, 2, 8, 8, 4], min_length=5, max_length=5)
    extra_blocks: int = Field(2, ge=0, description="residual blocks without shortcut at 32x")
    trainable_modules: int = Field(
        2, ge=0, description="only the last N modules train (SeqTR freezes the rest)"
    )

    @property
    def out_channels(self) -> tuple[int, int, int]:
        return (8 * self.stem, 16 * self.stem, 32 * self.stem)


class LanguageConfig(ModelConfig):
    """Word embeddings (GloVe rows come with the checkpoint) and the bi-GRU."""

    vocab_size: int = Field(10344, gt=2, description="PAD 0, UNK 1, then the words")
    embed_dim: int = Field(300, gt=0)
    hidden_size: int = Field(512, gt=0, description="per direction; the feature is 2x this")
    max_tokens: int = Field(15, gt=0, description="15 for RefCOCO/+, 20 for RefCOCOg")
    freeze_embedding: bool = True


class HeadConfig(ModelConfig):
    """The transformer over coordinate tokens."""

    d_model: int = Field(256, gt=0)
    num_heads: int = Field(8, gt=0)
    ffn_dim: int = Field(1024, gt=0)
    encoder_layers: int = Field(6, ge=0)
    decoder_layers: int = Field(3, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    gn_groups: int = Field(32, gt=0)
    num_bins: int = Field(1000, gt=1, description="coordinate bins; token num_bins is END")

    @model_validator(mode="after")
    def _check(self) -> HeadConfig:
        if self.d_model % self.num_heads or self.d_model % self.gn_groups:
            raise ValueError("d_model must be divisible by num_heads and gn_groups")
        if self.d_model % 4:
            raise ValueError("d_model must be divisible by 4 (2-D sine positions)")
        return self


class SeqTRConfig(ModelConfig):
    """SeqTR: ``task`` "box" (REC) or "mask" (RES, a contour of ``num_ray`` points)."""

    task: Literal["box", "mask"] = "box"
    num_ray: int = Field(18, gt=1, description="contour points; 18 RefCOCO, 12 RefCOCO+/g")
    shuffle_fraction: float = Field(
        -1.0, le=1, description="share of a batch whose contour starts at a random point"
    )
    box_x1_weight: float = Field(1.5, gt=0, description="loss weight of the x1 token (REC)")
    end_weight: float = Field(0.1, ge=0, description="loss weight of END/padding tokens (RES)")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    input_size: int = Field(640, gt=0, description="test images fit in input_size^2")
    size_divisor: int = Field(32, gt=0)
    partial_res: bool = Field(
        False,
        description="Partial-RES head: sentence token in the encoder, co-content teacher "
        "forcing, learned mask start token, point-guided (SMCA) cross-attention",
    )
    vision: DarkNetConfig = Field(default_factory=DarkNetConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)

    @model_validator(mode="after")
    def _check_widths(self) -> SeqTRConfig:
        if 2 * self.language.hidden_size != self.vision.out_channels[2]:
            raise ValueError(
                f"the sentence feature (2 x language.hidden_size = "
                f"{2 * self.language.hidden_size}) must equal the top visual width "
                f"32 x vision.stem = {self.vision.out_channels[2]}"
            )
        return self

    @property
    def sequence_length(self) -> int:
        """Coordinate tokens written for one object (END not counted)."""
        return 4 if self.task == "box" else 2 * self.num_ray
