"""Referring prediction: files in, one RLE mask per sentence out, readable by rem-eval."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from rem_core import masks as mask_ops
from rem_core.errors import RemError
from rem_core.refer import read_referring
from rem_models import get_model, get_model_config
from rem_models.checkpoints import save_checkpoint_safetensors
from rem_models.lavt.convert import rem_key
from rem_models.lavt.predict import load_lavt_for_inference, predict_referring_run
from rem_models.lavt.synthetic import make_referring_sample, vocabulary
from rem_models.lavt.text import build_tokenizer

SIZE = 32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lavt_predict")
    data = make_referring_sample(root / "data", 3, size=48, seed=2, split="val")
    overrides = {
        "swin.embed_dim": 16,
        "swin.depths": [1, 1, 1, 1],
        "swin.num_heads": [1, 1, 2, 2],
        "swin.window_size": 4,
        "text.vocab_size": len(vocabulary()),
        "text.hidden_size": 32,
        "text.num_layers": 1,
        "text.num_heads": 2,
        "text.intermediate_size": 64,
        "text.tokenizer": str(data.vocab),
        "image_size": SIZE,
    }
    torch.manual_seed(0)
    model = get_model("lavt_test", **overrides).eval()
    # Random decoder weights give near-zero logits; a bias makes the masks non-trivial.
    with torch.no_grad():
        model.decoder.predictor.bias.copy_(torch.tensor([0.0, 0.02]))
    ckpt = save_checkpoint_safetensors(
        root / "m.safetensors",
        model.state_dict(),
        get_model_config("lavt_test", **overrides),
        arch="lavt_test",
    )
    return root, data, model, ckpt


def _expected_masks(model, data) -> dict[tuple[int, int], np.ndarray]:
    """Masks computed here step by step: PIL bilinear to S x S, tokenise, argmax."""
    tokenizer = build_tokenizer(model.text_encoder.config)
    out = {}
    for sample in data.samples:
        with Image.open(data.image_dir / sample.file_name) as img:
            pixels = np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
        image = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None]
        for sentence in sample.sentences:
            ids, mask = tokenizer([sentence.sent])
            with torch.no_grad():
                logits = model(image, ids, mask)
            out[(sample.ref_id, sentence.sent_id)] = (logits[0, 1] > logits[0, 0]).numpy()
    return out


def test_predict_writes_one_mask_per_sentence(setup):
    root, data, model, ckpt = setup
    out = root / "preds_input.json"
    results = predict_referring_run(
        "lavt_test",
        ckpt,
        data.refs,
        out,
        image_dir=data.image_dir,
        mask_size="input",
        batch_size=4,
    )
    assert json.loads(out.read_text()) == results
    assert len(results) == 3 * 2 * 3
    expected = _expected_masks(model, data)
    assert {(r["ref_id"], r["sent_id"]) for r in results} == set(expected)
    nonempty = 0
    for record in results:
        assert record["segmentation"]["size"] == [SIZE, SIZE]
        assert isinstance(record["segmentation"]["counts"], str)
        mask = mask_ops.decode(record["segmentation"]).astype(bool)
        assert np.array_equal(mask, expected[(record["ref_id"], record["sent_id"])])
        nonempty += bool(mask.any()) and not bool(mask.all())
    assert nonempty > 0

    original = predict_referring_run(
        "lavt_test", ckpt, data.refs, root / "preds_orig.json", image_dir=data.image_dir
    )
    for a, b in zip(results, original, strict=True):
        assert b["segmentation"]["size"] == [48, 48]
        small = mask_ops.decode(a["segmentation"])
        big = np.asarray(Image.fromarray(small).resize((48, 48), Image.NEAREST))
        assert np.array_equal(mask_ops.decode(b["segmentation"]), big)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_predictions_score_with_rem_eval(setup):
    rem_eval = pytest.importorskip("rem_eval.referring")
    root, data, _, ckpt = setup
    out = root / "preds_eval.json"
    predict_referring_run(
        "lavt_test", ckpt, data.refs, out, image_dir=data.image_dir, mask_size="input"
    )
    config = rem_eval.ReferringConfig(resolution=f"square:{SIZE}", gt_mask="exclusive")
    report = rem_eval.evaluate_referring(data.refs, out, config)
    # The same numbers computed here from LAVT's rules.
    inter = union = 0
    ious = []
    preds = {(r["ref_id"], r["sent_id"]): r for r in json.loads(out.read_text())}
    for sample in read_referring(data.refs):
        poly = mask_ops.decode(mask_ops.to_rle(sample.segmentation, 48, 48))
        gt = np.asarray(Image.fromarray(poly).resize((SIZE, SIZE), Image.NEAREST)).astype(bool)
        for sentence in sample.sentences:
            pred = mask_ops.decode(preds[(sample.ref_id, sentence.sent_id)]["segmentation"])
            i, u = int((pred.astype(bool) & gt).sum()), int((pred.astype(bool) | gt).sum())
            inter, union = inter + i, union + u
            ious.append(i / u if u else 0.0)
    assert report.num_samples == 18
    assert report.oiou == pytest.approx(inter / union)
    assert report.miou == pytest.approx(float(np.mean(ious)))


def test_predict_straight_from_a_lavt_file(setup, tmp_path):
    _, data, model, ckpt = setup
    inverse = {}
    state = model.state_dict()
    # LAVT's names for this layout, kept where the converter's rules land on our keys.
    for key in _names_for(model):
        target = rem_key(key)
        if target in state:
            inverse[key] = target
    lavt_model, bert = {}, {}
    for key, target in inverse.items():
        tensor = state[target]
        if ".fusion." in key and key.endswith("weight"):
            tensor = tensor[..., None]
        if key.startswith("bert_model."):
            bert[key.removeprefix("bert_model.")] = tensor
        else:
            lavt_model[key] = tensor
    assert len(lavt_model) + len(bert) == len(state)
    path = tmp_path / "lavt.pth"
    args = argparse.Namespace(model="lavt", mha="", img_size=SIZE, fusion_drop=0.0)
    torch.save({"model": lavt_model, "bert_model": bert, "args": args}, path)
    tokenizer_override = [f"model.text.tokenizer={data.vocab}"]
    direct = load_lavt_for_inference("lavt_test", path, tokenizer_override)
    assert direct.image_size == SIZE
    for key, value in load_lavt_for_inference("lavt_test", ckpt).state_dict().items():
        assert torch.equal(direct.state_dict()[key], value), key
    assert direct.text_encoder.config.tokenizer == str(data.vocab)


def _names_for(model) -> list[str]:
    """LAVT key names of a 4-stage, one-block-per-stage model (the fixture's layout)."""
    names = [f"backbone.patch_embed.{m}.{p}" for m in ("proj", "norm") for p in ("weight", "bias")]
    parts = ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    fusion = (
        "vis_project.0",
        "image_lang_att.f_query.0",
        "image_lang_att.f_key.0",
        "image_lang_att.f_value.0",
        "image_lang_att.W.0",
        "project_mm.0",
    )
    for i in range(4):
        names += [
            f"backbone.layers.{i}.blocks.0.{m}.{p}" for m in parts for p in ("weight", "bias")
        ]
        names.append(f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table")
        names += [f"backbone.layers.{i}.fusion.{m}.{p}" for m in fusion for p in ("weight", "bias")]
        names += [f"backbone.layers.{i}.res_gate.{k}.weight" for k in (0, 2)]
        names += [f"backbone.layers.{i}.downsample.norm.{p}" for p in ("weight", "bias")]
        names += [f"backbone.layers.{i}.downsample.reduction.weight", f"backbone.norm{i}.weight"]
        names.append(f"backbone.norm{i}.bias")
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for level in "432":
        for n in "12":
            names.append(f"classifier.conv{n}_{level}.weight")
            names += [f"classifier.bn{n}_{level}.{p}" for p in bn]
    names += ["classifier.conv1_1.weight", "classifier.conv1_1.bias"]
    names += [f"bert_model.{k}" for k in model.text_encoder.bert.state_dict()]
    return names


def test_errors(setup, tmp_path):
    _, data, _, ckpt = setup
    with pytest.raises(RemError, match="no referring samples in split testA"):
        predict_referring_run(
            "lavt_test",
            ckpt,
            data.refs,
            tmp_path / "p.json",
            image_dir=data.image_dir,
            split="testA",
        )
    with pytest.raises(RemError, match="image not found"):
        predict_referring_run("lavt_test", ckpt, data.refs, tmp_path / "p.json", image_dir=tmp_path)
    vit = get_model("vitdet_test")
    path = save_checkpoint_safetensors(
        tmp_path / "v.safetensors",
        vit.state_dict(),
        get_model_config("vitdet_test"),
        arch="vitdet_test",
    )
    with pytest.raises(RemError, match="not a LAVT model"):
        load_lavt_for_inference("vitdet_test", path)
