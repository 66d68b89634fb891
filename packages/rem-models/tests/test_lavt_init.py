"""Training initialisation: ImageNet Swin into the backbone, a saved BERT into the text encoder."""

from __future__ import annotations

import pytest
import torch

from rem_core.errors import RemError
from rem_models import get_model
from rem_models.lavt.init import load_bert_init, load_swin_init, swin_backbone_state


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _classification_swin(model, seed=1) -> dict[str, torch.Tensor]:
    """A classification Swin state dict (timm / Microsoft names) of the backbone's shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in model.state_dict().items():
        if not key.startswith("backbone.") or ".fusion." in key or ".gate." in key:
            continue
        if key.startswith("backbone.out_norms."):
            continue
        name = key.removeprefix("backbone.").replace("stages.", "layers.")
        state[name] = torch.randn(tensor.shape, generator=g)
    state["norm.weight"] = torch.ones(256)
    state["norm.bias"] = torch.zeros(256)
    state["head.weight"] = torch.zeros(1000, 256)
    state["head.bias"] = torch.zeros(1000)
    state["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
    state["layers.2.blocks.1.attn_mask"] = torch.zeros(1, 16, 16)
    return state


def test_swin_init_fills_the_blocks_only(tmp_path):
    model = get_model("lavt_test")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = _classification_swin(model)
    path = tmp_path / "swin.pth"
    torch.save({"model": state}, path)
    report = load_swin_init(model, path)
    after = model.state_dict()
    for key in report.loaded:
        name = key.removeprefix("backbone.").replace("stages.", "layers.")
        assert torch.equal(after[key], state[name]), key
    assert report.ignored == sorted(
        [
            "norm.weight",
            "norm.bias",
            "head.weight",
            "head.bias",
            "layers.0.blocks.0.attn.relative_position_index",
            "layers.2.blocks.1.attn_mask",
        ]
    )
    # PWAMs, gates and the stage output norms keep their fresh values, as in LAVT.
    assert report.kept and all(
        ".fusion." in k or ".gate." in k or k.startswith("backbone.out_norms.") for k in report.kept
    )
    for key in report.kept:
        assert torch.equal(after[key], before[key]), key
    assert len(report.loaded) + len(report.kept) == sum(
        1 for k in after if k.startswith("backbone.")
    )


def test_swin_init_errors():
    model = get_model("lavt_test")
    state = _classification_swin(model)
    state["layers.0.blocks.0.attn.relative_position_bias_table"] = torch.zeros(169, 1)
    with pytest.raises(RemError, match="window size"):
        load_swin_init(model, state)
    with pytest.raises(RemError, match="is not a Swin Transformer weight"):
        swin_backbone_state({"decoder.whatever": torch.zeros(1)})
    with pytest.raises(RemError, match="no Swin block weights"):
        load_swin_init(model, {"head.weight": torch.zeros(1)})


def test_bert_init_from_a_saved_model(tmp_path):
    from transformers import BertModel

    from rem_models.lavt.text import bert_config

    model = get_model("lavt_test")
    torch.manual_seed(3)
    saved = BertModel(bert_config(model.text_encoder.config), add_pooling_layer=True)
    saved.save_pretrained(tmp_path / "bert")
    report = load_bert_init(model, tmp_path / "bert")
    ours = model.text_encoder.bert.state_dict()
    for key, value in saved.state_dict().items():
        if not key.startswith("pooler."):
            assert torch.equal(ours[key], value), key
    assert len(report.loaded) == len(ours)
    other = get_model("lavt_test", **{"text.intermediate_size": 32})
    with pytest.raises(RemError, match="the config wants"):
        load_bert_init(other, tmp_path / "bert")
