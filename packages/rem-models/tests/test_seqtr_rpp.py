"""Partial-RES: RPP keep/drop on hand-built cases, deterministic mask sampling, the commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_models.seqtr.cli import seqtr
from rem_models.seqtr.data import GroundingItem, read_seqtr_instances, write_seqtr_instances
from rem_models.seqtr.rpp import box_mask, projection_term, rpp_decision
from rem_models.seqtr.sampling import sample_indices, sample_mask_split


@pytest.fixture(autouse=True)
def _seqtr_command(monkeypatch):
    monkeypatch.setitem(cli.commands, "seqtr", seqtr)


def test_projection_term_by_hand() -> None:
    box = box_mask([2, 2, 4, 4], 10, 10)  # columns 2..5, rows 2..5
    assert box.sum() == 16
    assert projection_term(box, box) == pytest.approx(0, abs=1e-5)
    # a diamond inside the box touching all four sides has the box's projections: term 0
    diamond = np.zeros((10, 10), bool)
    diamond[2:6, 3:5] = True
    diamond[3:5, 2:6] = True
    assert projection_term(diamond, box) == pytest.approx(0, abs=1e-5)
    # columns 2..3 only: x dice = 1 - 2*2/(2+4) = 1/3; y projection matches
    half = np.zeros((10, 10), bool)
    half[2:6, 2:4] = True
    assert projection_term(half, box) == pytest.approx(1 / 3, abs=1e-5)
    # one extra column and row: x dice = 1 - 2*4/(5+4) = 1/9 each
    grown = np.zeros((10, 10), bool)
    grown[2:7, 2:7] = True
    assert projection_term(grown, box) == pytest.approx(2 / 9, abs=1e-5)


@pytest.mark.parametrize(
    ("polygon", "keep", "reason"),
    [
        ([2, 2, 38, 2, 38, 18, 2, 18], True, "kept"),  # the box itself
        ([20, 2, 38, 10, 20, 18, 2, 10], True, "kept"),  # a diamond spanning the box
        ([2, 2, 20, 2, 20, 18, 2, 18], False, "term"),  # left half only: x dice ~ 1/3
        ([60, 30, 70, 30, 70, 38, 60, 38], False, "term"),  # elsewhere: 2
        ([2, 2, 38, 2], False, "no polygon"),  # 2 points
    ],
)
def test_rpp_keep_drop(polygon, keep, reason) -> None:
    d = rpp_decision(7, [polygon], [2, 2, 36, 16], 40, 80)
    assert d.keep is keep
    assert d.reason.startswith(reason)
    assert (d.term is None) == (reason == "no polygon")


def test_rpp_threshold_edge() -> None:
    # columns 2..37 of the box vs a mask over 2..34: x dice = 1 - 2*33/(33+36) = 3/69 (~0.043)
    d = rpp_decision(1, [[2, 2, 35, 2, 35, 18, 2, 18]], [2, 2, 36, 16], 40, 80)
    assert d.keep and d.term == pytest.approx(3 / 69, abs=1e-4)
    assert not rpp_decision(1, [[2, 2, 35, 2, 35, 18, 2, 18]], [2, 2, 36, 16], 40, 80, 0.04).keep


def test_sampling_is_deterministic_and_sized() -> None:
    a = sample_indices(1000, 0.01, seed=3)
    assert a == sample_indices(1000, 0.01, seed=3)
    assert len(a) == 10 and a == sorted(set(a))
    assert a != sample_indices(1000, 0.01, seed=4)
    assert len(sample_indices(1000, 0.05, 0)) == 50
    assert len(sample_indices(1000, 0.1, 0)) == 100
    assert len(sample_indices(7, 0.01, 0)) == 1
    with pytest.raises(RemError, match="ratio"):
        sample_indices(10, 0.0, 0)


def _items(n: int) -> list[GroundingItem]:
    return [
        GroundingItem(
            ref_id=100 + i,
            image_id=i,
            file_name=f"{i}.png",
            height=40,
            width=80,
            bbox=(2.0, 2.0, 36.0, 16.0),
            expressions=[f"thing {i}"],
            mask=[[2, 2, 38, 2, 38, 18, 2, 18]],
        )
        for i in range(n)
    ]


def test_sample_split_and_rpp_commands(tmp_path) -> None:
    splits = {"train": _items(20), "val": _items(2)}
    src = write_seqtr_instances(tmp_path / "instances.json", splits)
    sampled = sample_mask_split({k: v for k, v in splits.items()}, 0.1, 0)
    assert len(sampled["train"]) == 2 and len(sampled["train_unsampled"]) == 18
    assert all(it.mask is None for it in sampled["train_unsampled"])
    runner = CliRunner()
    res = runner.invoke(
        cli, ["seqtr", "sample-masks", str(src), "--ratio", "0.1", "--out-dir", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    sample = tmp_path / "instances_sample_0.1.json"
    assert [it.ref_id for it in read_seqtr_instances(sample, "train")] == [
        it.ref_id for it in sampled["train"]
    ]
    rest = read_seqtr_instances(sample, "train_unsampled")
    # predictions for all but one unsampled entry: even ones good, odd ones half-wrong
    preds = []
    for k, it in enumerate(rest[:-1]):
        poly = [2, 2, 38, 2, 38, 18, 2, 18] if k % 2 == 0 else [2, 2, 20, 2, 20, 18, 2, 18]
        preds.append({"ref_id": it.ref_id, "polygon": poly})
    pred_file = tmp_path / "preds.json"
    pred_file.write_text(json.dumps(preds))
    out = tmp_path / "instances_sample_0.1_bbox_pick.json"
    res = runner.invoke(
        cli, ["seqtr", "select-pseudo", str(sample), str(pred_file), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "kept 9 of 18" in res.output
    train = read_seqtr_instances(out, "train")
    assert len(train) == 2 + 9
    assert {it.ref_id for it in train[2:]} == {rest[k].ref_id for k in range(0, 17, 2)}
    assert len(read_seqtr_instances(out, "val")) == 2
    res = runner.invoke(
        cli, ["seqtr", "select-pseudo", str(src), str(pred_file), "--out", str(out)]
    )
    assert res.exit_code == 2 and "no 'train_unsampled' split" in res.output
