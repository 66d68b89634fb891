"""Registered LAVT variants and the released checkpoints.

``lavt`` and ``lavt_one`` are the same network (Swin-B window 12 + BERT-base, 227,739,514
parameters); they name LAVT's two checkpoint layouts (BERT beside the model in ``bert_model``,
or inside it as ``text_encoder``) and their released weights. The converter accepts both
layouts for either name. ``lavt_test`` has the layout of the tiny LAVT oracle in the test
data (Swin width 32, depths 1-1-2-1, window 4, one BERT layer of width 768).

The released weights live on Google Drive, which answers large downloads with a confirmation
page rather than the file, so they are listed here as data instead of :class:`Weights`
records: download by hand, then ``rem convert-checkpoint lavt FILE.pth OUT.safetensors``.
"""

from __future__ import annotations

from rem_models.lavt.build import build_lavt
from rem_models.lavt.config import LavtConfig, SwinConfig, TextConfig
from rem_models.lavt.convert import convert_lavt_state_dict
from rem_models.lavt.model import LAVT
from rem_models.registry import register_model

_DRIVE = "https://drive.google.com/file/d/{id}/view"

RELEASED_CHECKPOINTS: dict[str, dict[str, object]] = {
    # name -> Google Drive page and the published oIoU / mIoU of LAVT's README (test.py, CE loss)
    "lavt/refcoco": {
        "url": _DRIVE.format(id="13D-OeEOijV8KTC3BkFP-gOJymc6DLwVT"),
        "oiou": {"val": 72.73, "testA": 75.82, "testB": 68.79},
        "miou": {"val": 74.46, "testA": 76.89, "testB": 70.94},
    },
    "lavt/refcoco+": {
        "url": _DRIVE.format(id="1B8Q44ZWsc8Pva2xD_M-KFh7-LgzeH2-2"),
        "oiou": {"val": 62.14, "testA": 68.38, "testB": 55.10},
        "miou": {"val": 65.81, "testA": 70.97, "testB": 59.23},
    },
    "lavt/gref-umd": {
        "url": _DRIVE.format(id="1BjUnPVpALurkGl7RXXvQiAHhA-gQYKvK"),
        "oiou": {"val": 61.24, "test": 62.09},
        "miou": {"val": 63.34, "test": 63.62},
    },
    "lavt/gref-google": {
        "url": _DRIVE.format(id="1weiw5UjbPfo3tCBPfB8tu6xFXCUG16yS"),
        "oiou": {"val": 60.50},
        "miou": {"val": 63.66},
    },
    # lavt_one weights (June 2022); the README's second table is for a later Dice-loss model.
    "lavt_one/refcoco": {"url": _DRIVE.format(id="1xFMEXr6AGU97Ypj1yr8oo00uObbeIQvJ")},
    "lavt_one/refcoco+": {"url": _DRIVE.format(id="1HS8ZnGaiPJr-OmoUn4-4LVnVtD_zHY6w")},
    "lavt_one/gref-umd": {"url": _DRIVE.format(id="14g8NzgZn6HzC6tP_bsQuWmh5LnOcovsE")},
    "lavt_one/gref-google": {"url": _DRIVE.format(id="1IJeahFVLgKxu_BVmWacZs3oUzgTCeWcz")},
}

# Initialisation used for LAVT's training (ImageNet-22K Swin-B, window 12, 384 px).
SWIN_INIT_URL = (
    "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/"
    "swin_base_patch4_window12_384_22k.pth"
)

TEST_CONFIG = LavtConfig(
    swin=SwinConfig(embed_dim=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8], window_size=4),
    text=TextConfig(
        vocab_size=1000, hidden_size=768, num_layers=1, num_heads=12, intermediate_size=64
    ),
    image_size=64,
)


@register_model("lavt", config=LavtConfig(), converter=convert_lavt_state_dict)
def lavt(config: LavtConfig) -> LAVT:
    """LAVT referring segmentation: Swin-B (window 12) + PWAMs + BERT-base (lavt layout)."""
    return build_lavt(config)


@register_model("lavt_one", config=LavtConfig(), converter=convert_lavt_state_dict)
def lavt_one(config: LavtConfig) -> LAVT:
    """LAVT referring segmentation, lavt_one layout (BERT stored inside the model)."""
    return build_lavt(config)


@register_model("lavt_test", config=TEST_CONFIG, converter=convert_lavt_state_dict)
def lavt_test(config: LavtConfig) -> LAVT:
    """Tiny LAVT with the layout of the LAVT oracle test data (CPU tests)."""
    return build_lavt(config)
