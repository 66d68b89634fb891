"""A tiny LAVT learns a synthetic referring task on the CPU, reading the sentences to do it.

Every synthetic image holds two shapes and each is named by three sentences (colour + kind,
colour + side, kind + side), so segmenting without reading gives an IoU near 0.5 at best.
After a short training run with LAVT's recipe (weighted CE, AdamW groups, poly schedule;
a larger lr for a model trained from scratch) the model must beat that clearly, and giving it
the sentences of the other shape must move its masks onto the other shape.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rem_models import get_model
from rem_models.lavt.data import ReferringDataset
from rem_models.lavt.synthetic import make_referring_sample, vocabulary
from rem_models.lavt.text import build_tokenizer
from rem_models.lavt.training import LavtTrainConfig, train_lavt

SIZE = 48


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_overrides(vocab) -> dict:
    return {
        "swin.embed_dim": 16,
        "swin.depths": [1, 1, 1, 1],
        "swin.num_heads": [1, 1, 2, 2],
        "swin.window_size": 4,
        "swin.drop_path_rate": 0.0,
        "text.vocab_size": len(vocabulary()),
        "text.hidden_size": 32,
        "text.num_layers": 1,
        "text.num_heads": 2,
        "text.intermediate_size": 64,
        "text.hidden_dropout": 0.0,
        "text.attention_dropout": 0.0,
        "text.tokenizer": str(vocab),
        "image_size": SIZE,
    }


def _evaluate(model, dataset, swap: bool = False) -> tuple[float, float]:
    """(oIoU, mIoU) over every sentence; ``swap`` feeds the other shape's sentence instead."""
    partner = {}
    for s in dataset.samples:  # the two refs of an image are consecutive ids
        partner[s.ref_id] = s.ref_id + 1 if s.ref_id % 2 else s.ref_id - 1
    by_id = {s.ref_id: i for i, s in enumerate(dataset.samples)}
    inter = union = 0
    ious = []
    with torch.no_grad():
        for k in range(len(dataset)):
            item = dataset[k]
            ids, mask = item["token_ids"], item["attention_mask"]
            if swap:
                other = dataset.samples[by_id[partner[item["ref_id"]]]]
                ids, mask = dataset.tokenizer([other.sentences[item["sent_index"]].sent])
                ids, mask = ids[0], mask[0]
            pred = model.predict_masks(item["image"][None], ids[None], mask[None])[0]
            gt = item["target"].bool()
            i, u = int((pred & gt).sum()), int((pred | gt).sum())
            inter, union = inter + i, union + u
            ious.append(i / u if u else 0.0)
    return inter / union, float(np.mean(ious))


def test_tiny_lavt_learns_synthetic_referring(tmp_path):
    train = make_referring_sample(tmp_path / "train", 60, size=SIZE, seed=0)
    val = make_referring_sample(
        tmp_path / "val", 12, size=SIZE, seed=1, split="val", first_ref_id=1001
    )
    torch.manual_seed(0)
    model = get_model("lavt_test", **tiny_overrides(train.vocab))
    tokenizer = build_tokenizer(model.text_encoder.config)
    dataset = ReferringDataset(train.samples, train.image_dir, tokenizer, image_size=SIZE)
    recipe = LavtTrainConfig(lr=2e-3, epochs=12, batch_size=8, image_size=SIZE)
    assert recipe.bert_layers == "reference"  # embeddings frozen, as in LAVT
    embeddings = model.text_encoder.bert.embeddings.word_embeddings.weight.clone()
    losses = train_lavt(model, dataset, recipe)
    assert len(losses) == 12 * (120 // 8)
    assert np.mean(losses[-10:]) < 0.3 * losses[0]
    assert torch.equal(model.text_encoder.bert.embeddings.word_embeddings.weight, embeddings)

    val_set = ReferringDataset(
        val.samples, val.image_dir, tokenizer, image_size=SIZE, every_sentence=True
    )
    assert len(val_set) == 12 * 2 * 3
    oiou, miou = _evaluate(model, val_set)
    assert miou > 0.7 and oiou > 0.7, (oiou, miou)
    # The same images with the other shape's sentences: the masks follow the words.
    _, swapped = _evaluate(model, val_set, swap=True)
    assert swapped < 0.25, swapped


def test_training_is_deterministic(tmp_path):
    data = make_referring_sample(tmp_path, 8, size=32, seed=3)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        overrides = {**tiny_overrides(data.vocab), "image_size": 32, "swin.drop_path_rate": 0.3}
        model = get_model("lavt_test", **overrides)
        tokenizer = build_tokenizer(model.text_encoder.config)
        dataset = ReferringDataset(data.samples, data.image_dir, tokenizer, image_size=32)
        recipe = LavtTrainConfig(lr=1e-3, epochs=2, batch_size=4, image_size=32, seed=5)
        runs.append(train_lavt(model, dataset, recipe))
    assert runs[0] == runs[1] and len(runs[0]) == 8


def test_train_run_writes_a_checkpoint_and_resumes_exactly(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import rem_models.lavt.training as training
    from rem_core.errors import RemError
    from rem_models.checkpoints import build_from_checkpoint
    from rem_models.lavt.train_run import train_referring_run

    data = make_referring_sample(tmp_path / "data", 8, size=32, seed=4)
    sets = [f"model.{k}={v}" for k, v in tiny_overrides(data.vocab).items() if k != "image_size"]
    sets = [s.replace("'", '"') for s in sets] + ["model.image_size=32", "image_size=32"]
    sets += ["epochs=2", "batch_size=4", "lr=1e-3", "seed=7"]
    args = ("lavt_test", data.refs, data.image_dir)
    final = train_referring_run(*args, tmp_path / "a", overrides=sets)
    manifest = json.loads((tmp_path / "a" / "run.json").read_text())
    assert manifest["epochs_done"] == 2 and len(manifest["epoch_mean_loss"]) == 2
    assert manifest["train_config"]["lr"] == 1e-3 and manifest["data"]["refs_count"] == 16
    assert build_from_checkpoint(final).image_size == 32

    real_loss, calls = training.lavt_loss, {"n": 0}

    def crash_in_second_epoch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:  # 4 steps per epoch: the crash comes after the epoch-1 snapshot
            raise KeyboardInterrupt
        return real_loss(*a, **k)

    monkeypatch.setattr(training, "lavt_loss", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_referring_run(*args, tmp_path / "b", overrides=sets)
    monkeypatch.setattr(training, "lavt_loss", real_loss)
    with pytest.raises(RemError, match="already holds a run"):
        train_referring_run(*args, tmp_path / "b", overrides=sets)
    resumed = train_referring_run(*args, tmp_path / "b", resume=True)
    a, b = load_file(final), load_file(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (
        json.loads((tmp_path / "b" / "run.json").read_text())["epoch_mean_loss"]
        == (manifest["epoch_mean_loss"])
    )
