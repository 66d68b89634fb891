"""The shared per-category ledger: sums, log lines, JSON and table output."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from rich.console import Console

from rem_refine.accounting import Accounting, AccountingError, accounting_path


def a(i, cat, **extra):
    return {"id": i, "image_id": i // 10, "category_id": cat, **extra}


@pytest.fixture
def ledger():
    acc = Accounting("refine", categories=[{"id": 1, "name": "person"}, {"id": 2, "name": "car"}])
    acc.refined(a(10, 1))
    acc.refined(a(11, 1))
    acc.kept_crowd(a(12, 1, iscrowd=1))
    acc.kept_fallback(a(13, 2), "empty SAM mask", detail="all 10 trials empty")
    acc.skipped(a(14, 2), "degenerate polygon")
    acc.removed(a(15, 2, source="lvis", source_id=7), "duplicate")
    acc.added(a(16, 2), "manual")
    return acc


def test_sums_per_category(ledger):
    # person: 3 in, 3 out; car: 3 in (fallback, skipped, removed), 3 out (fallback, skipped, added)
    assert (ledger.n_input(1), ledger.n_output(1)) == (3, 3)
    assert (ledger.n_input(2), ledger.n_output(2)) == (3, 3)
    inputs = [a(i, 1) for i in (10, 11, 12)] + [a(i, 2) for i in (13, 14, 15)]
    outputs = [a(i, 1) for i in (10, 11, 12)] + [a(i, 2) for i in (13, 14, 16)]
    ledger.check(inputs, outputs)

    with pytest.raises(AccountingError, match="category 2: 4 inputs, 3 recorded"):
        ledger.check([*inputs, a(17, 2)], outputs)  # an input nobody accounted for
    with pytest.raises(AccountingError, match="category 1: 2 outputs, 3 recorded"):
        ledger.check(inputs, outputs[1:])  # an output that vanished
    with pytest.raises(AccountingError, match="category 5: 0 inputs, 1 recorded"):
        ledger.kept(a(18, 5))
        ledger.check(inputs, outputs)


def test_to_dict_and_log(ledger):
    d = ledger.to_dict()
    assert d["stage"] == "refine"
    assert d["totals"] == {
        "input": 6,
        "output": 6,
        "refined": 2,
        "kept": 0,
        "kept_crowd": 1,
        "kept_fallback": 1,
        "skipped": 1,
        "modified": 0,
        "removed": 1,
        "added": 1,
    }
    assert [(r["id"], r["name"], r["input"], r["output"]) for r in d["categories"]] == [
        (1, "person", 3, 3),
        (2, "car", 3, 3),
    ]
    assert d["reasons"]["kept_fallback"] == {"empty SAM mask": 1}
    assert d["reasons"]["refined"] == {"": 2}
    # Log lines only for fallback, skip, removal (and modification): not refined/kept/added.
    assert [(line["id"], line["outcome"]) for line in d["log"]] == [
        (13, "kept_fallback"),
        (14, "skipped"),
        (15, "removed"),
    ]
    assert d["log"][0]["detail"] == "all 10 trials empty"
    assert d["log"][2]["source"] == "lvis" and d["log"][2]["source_id"] == 7
    orjson.dumps(d)  # JSON-able as is


def test_update_adds_shards(ledger):
    other = Accounting("refine", categories={3: "bus"})
    other.refined(a(30, 3))
    other.removed(a(31, 1), "duplicate")
    ledger.update(other)
    assert ledger.n_input() == 8 and ledger.n_output() == 7
    assert ledger.names[3] == "bus" and ledger.names[1] == "person"
    assert ledger.reasons["removed"]["duplicate"] == 2 and len(ledger.log) == 4


def test_save_table_and_path(tmp_path, ledger):
    assert accounting_path("out/instances_valrem.json") == Path(
        "out/instances_valrem.accounting.json"
    )
    assert accounting_path("x") == Path("x.accounting.json")
    path = ledger.save(tmp_path / "sub" / "r.accounting.json")
    assert orjson.loads(path.read_bytes()) == ledger.to_dict()
    console = Console(width=160, record=True)
    console.print(ledger.table())
    text = console.export_text()
    assert "1 person" in text and "2 car" in text and "total" in text
    assert "modified" not in text  # columns only for outcomes that occurred


def test_unknown_outcome():
    with pytest.raises(ValueError, match="unknown outcome"):
        Accounting("x").record(a(1, 1), "lost")
