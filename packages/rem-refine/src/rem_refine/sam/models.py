"""SAM variants by name: segment-anything ViT-H/L/B, MobileSAM (TinyViT) and a tiny test model.

Every variant is segment-anything's ``Sam`` with its ``PromptEncoder`` and ``MaskDecoder``; only
the image encoder and a few widths differ. The canvas is always 1024 x 1024 with a 64 x 64 image
embedding and 256 x 256 low-resolution mask logits, so the refinement algorithm sees the same
frames whichever variant runs it.

Checkpoints are read with ``torch.load(weights_only=True)``, which never unpickles arbitrary
objects, and loaded strictly: a missing or unexpected key is an error, not a silent partial load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from torch import nn

from rem_core.errors import RemError
from rem_refine.sam.tiny_vit import TinyViT, tiny_vit_5m

CANVAS = 1024
"""Side of SAM's square input canvas, in pixels."""
EMBED_SIDE = CANVAS // 16
"""Side of the image embedding grid (64)."""


@dataclass(frozen=True)
class ViTConfig:
    """Widths of a segment-anything ViT image encoder."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]


VIT_CONFIGS: dict[str, ViTConfig] = {
    "vit_h": ViTConfig(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": ViTConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": ViTConfig(768, 12, 12, (2, 5, 8, 11)),
}


def _assemble(encoder: nn.Module, prompt_dim: int = 256, decoder_mlp: int = 2048) -> Sam:
    """Wrap an image encoder with SAM's prompt encoder and mask decoder (eval mode)."""
    sam = Sam(
        image_encoder=encoder,  # type: ignore[arg-type]  # any module with .img_size works
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(EMBED_SIDE, EMBED_SIDE),
            input_image_size=(CANVAS, CANVAS),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2,
                embedding_dim=prompt_dim,
                mlp_dim=decoder_mlp,
                num_heads=8 if prompt_dim >= 64 else 2,
            ),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=prompt_dim,
        ),
    )
    return sam.eval()


def _build_vit(cfg: ViTConfig) -> Sam:
    encoder = ImageEncoderViT(
        depth=cfg.depth,
        embed_dim=cfg.embed_dim,
        img_size=CANVAS,
        mlp_ratio=4,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_heads=cfg.num_heads,
        patch_size=16,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=cfg.global_attn_indexes,
        window_size=14,
        out_chans=256,
    )
    return _assemble(encoder)


def build_vit_h() -> Sam:
    return _build_vit(VIT_CONFIGS["vit_h"])


def build_vit_l() -> Sam:
    return _build_vit(VIT_CONFIGS["vit_l"])


def build_vit_b() -> Sam:
    return _build_vit(VIT_CONFIGS["vit_b"])


def build_mobile_sam() -> Sam:
    """MobileSAM: TinyViT-5M encoder, SAM's prompt encoder and mask decoder."""
    return _assemble(tiny_vit_5m(CANVAS))


def build_tiny_test() -> Sam:
    """A few-hundred-thousand-parameter SAM for CPU tests: same frames, narrow widths.

    It is useful only with random weights: it exercises every step of the algorithm (1024
    canvas, 64 x 64 embedding, 256 x 256 logits) in well under a second per image on a CPU.
    """
    encoder = ImageEncoderViT(
        depth=2,
        embed_dim=32,
        img_size=CANVAS,
        mlp_ratio=2,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_heads=2,
        patch_size=16,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=(),  # windowed only: global attention over 4096 tokens is slow
        window_size=14,
        out_chans=32,
    )
    return _assemble(encoder, prompt_dim=32, decoder_mlp=64)


def build_tiny_vit_test() -> Sam:
    """MobileSAM's structure at test widths, for CPU tests of the TinyViT path."""
    encoder = TinyViT(
        img_size=CANVAS,
        embed_dims=(8, 16, 16, 32),
        depths=(1, 1, 1, 1),
        num_heads=(1, 2, 2, 2),
        window_sizes=(7, 7, 14, 7),
        num_classes=10,
        out_chans=32,
    )
    return _assemble(encoder, prompt_dim=32, decoder_mlp=64)


SAM_BUILDERS: dict[str, Callable[[], Sam]] = {
    "vit_h": build_vit_h,
    "vit_l": build_vit_l,
    "vit_b": build_vit_b,
    "vit_t": build_mobile_sam,
    "tiny": build_tiny_test,
    "tiny_vit_t": build_tiny_vit_test,
}
"""Architecture name -> builder. ``vit_t`` is MobileSAM; ``tiny*`` are CPU test variants."""

ARCH_ALIASES = {"mobile_sam": "vit_t", "default": "vit_h"}


def canonical_arch(arch: str) -> str:
    arch = ARCH_ALIASES.get(arch, arch)
    if arch not in SAM_BUILDERS:
        raise RemError(f"unknown SAM architecture {arch!r}; expected one of {sorted(SAM_BUILDERS)}")
    return arch


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, without unpickling arbitrary objects.

    Accepts a plain state dict (the official SAM and MobileSAM files) or one wrapped under
    ``"model"`` / ``"state_dict"``.
    """
    path = Path(path)
    if not path.is_file():
        raise RemError("checkpoint file not found", path=path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusing a non-tensor object lands here too
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RemError(f"cannot read checkpoint safely: {reason}", path=path) from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RemError("checkpoint is not a state dict of tensors", path=path)
    return obj


def load_sam(arch: str, checkpoint: str | Path | None) -> Sam:
    """Build ``arch`` and load ``checkpoint`` strictly; ``None`` keeps the random weights."""
    model = SAM_BUILDERS[canonical_arch(arch)]()
    if checkpoint is None:
        return model
    state = read_state_dict(checkpoint)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even when strict=False
        detail = " ".join(str(exc).split())[:300]
        raise RemError(
            f"checkpoint does not match architecture {arch}: {detail}", path=checkpoint
        ) from exc
    problems = []
    if result.missing_keys:
        problems.append(
            f"{len(result.missing_keys)} missing keys (first: {result.missing_keys[0]})"
        )
    if result.unexpected_keys:
        n, first = len(result.unexpected_keys), result.unexpected_keys[0]
        problems.append(f"{n} unexpected keys (first: {first})")
    if problems:
        raise RemError(
            f"checkpoint does not match architecture {arch}: " + "; ".join(problems),
            path=checkpoint,
        )
    return model.eval()
