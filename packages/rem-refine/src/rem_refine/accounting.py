"""A per-category ledger of what a pipeline stage did to every annotation.

Each stage (refine, merge, correct) records exactly one *outcome* per input annotation, plus one
``added`` outcome per annotation it creates, so that no annotation disappears without a line
saying why. Outcomes:

=================  =========  ===================================================================
outcome            in output  meaning
=================  =========  ===================================================================
``refined``        yes        the mask was replaced by the stage's result
``kept``           yes        passed through unchanged (e.g. merge keeps the COCO group)
``kept_crowd``     yes        a crowd annotation, deliberately left untouched
``kept_fallback``  yes        processed, but the result was rejected and the source mask kept
``skipped``        yes        not processed (bad input such as a degenerate polygon), unchanged
``modified``       yes        a field other than the mask changed (e.g. ``iscrowd`` set to 1)
``removed``        no         deleted from the output
``added``          yes        new annotation with no input counterpart
=================  =========  ===================================================================

Usage::

    acc = Accounting("merge", categories=coco["categories"])
    acc.kept(ann)                                    # one call per input annotation ...
    acc.removed(ann, reason="replaced by larger LVIS group", detail="LVIS 7 > COCO 3")
    acc.added(lvis_ann, reason="LVIS group larger")  # ... plus one per new annotation
    acc.extra["lvis"] = {...}                        # stage-specific, JSON-able details
    acc.check(inputs, outputs)                       # the sums must hold, per category
    acc.save(accounting_path(output))                # foo.json -> foo.accounting.json
    console.print(acc.table())

The category of a record is the annotation's ``category_id`` at the time it is recorded, i.e. the
output category (merge records LVIS annotations after remapping to COCO ids). Counts by
``(outcome, reason)`` are kept for every outcome, so a reason should be a fixed string; the
optional ``detail`` (free text: a comment, an entry index) goes only into the per-annotation log
lines (outcome, reason, detail, id, image_id, category_id, source, source_id), which are kept for
the outcomes in :data:`LOGGED`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

Ann = Mapping[str, Any]
Outcome = Literal[
    "refined", "kept", "kept_crowd", "kept_fallback", "skipped", "modified", "removed", "added"
]

OUTCOMES: tuple[str, ...] = (
    "refined",
    "kept",
    "kept_crowd",
    "kept_fallback",
    "skipped",
    "modified",
    "removed",
    "added",
)
IN_OUTPUT: frozenset[str] = frozenset(OUTCOMES) - {"removed"}
"""Outcomes whose annotation is written to the stage's output."""
FROM_INPUT: frozenset[str] = frozenset(OUTCOMES) - {"added"}
"""Outcomes that account for one input annotation."""
LOGGED: frozenset[str] = frozenset({"removed", "skipped", "kept_fallback", "modified"})
"""Outcomes that get a per-annotation log line (the others are counted only)."""


class AccountingError(AssertionError):
    """The recorded outcomes do not add up to the stage's input and output: a bug, not bad input."""


def accounting_path(output: str | Path) -> Path:
    """The ledger's conventional place beside a stage output: ``a/b.json`` -> ``a/b.accounting.json``."""
    output = Path(output)
    stem = output.name[: -len(".json")] if output.name.endswith(".json") else output.name
    return output.with_name(f"{stem}.accounting.json")


def _category_names(categories: Iterable[Mapping[str, Any]] | Mapping[int, str] | None):
    if categories is None:
        return {}
    if isinstance(categories, Mapping):
        return {int(k): str(v) for k, v in categories.items()}
    return {int(c["id"]): str(c.get("name", "")) for c in categories}


class Accounting:
    """Counts of outcomes per category and per reason, with a log of the notable ones."""

    def __init__(
        self,
        stage: str,
        categories: Iterable[Mapping[str, Any]] | Mapping[int, str] | None = None,
    ) -> None:
        self.stage = stage
        self.names: dict[int, str] = _category_names(categories)
        self.counts: dict[int, Counter[str]] = defaultdict(Counter)
        self.reasons: dict[str, Counter[str]] = defaultdict(Counter)
        self.log: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}

    # -- recording ---------------------------------------------------------------------------
    def record(
        self,
        ann: Mapping[str, Any],
        outcome: str,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Record one outcome for ``ann`` (a COCO annotation dict as it leaves the stage).

        ``reason`` is a category of cause, counted (keep it a fixed string, no ids or numbers);
        ``detail`` is free text for this annotation's log line only.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        cat = int(ann["category_id"])
        self.counts[cat][outcome] += 1
        self.reasons[outcome][reason or ""] += 1
        if outcome in LOGGED:
            line: dict[str, Any] = {
                "outcome": outcome,
                "reason": reason or "",
                "detail": detail or "",
                "id": ann.get("id"),
                "image_id": ann.get("image_id"),
                "category_id": cat,
            }
            for key in ("source", "source_id"):
                if key in ann:
                    line[key] = ann[key]
            self.log.append(line)

    def refined(self, ann: Ann, reason: str | None = None, detail: str | None = None) -> None:
        self.record(ann, "refined", reason, detail)

    def kept(self, ann: Ann, reason: str | None = None, detail: str | None = None) -> None:
        self.record(ann, "kept", reason, detail)

    def kept_crowd(self, ann: Ann, reason: str | None = "crowd", detail: str | None = None) -> None:
        self.record(ann, "kept_crowd", reason, detail)

    def kept_fallback(self, ann: Ann, reason: str, detail: str | None = None) -> None:
        self.record(ann, "kept_fallback", reason, detail)

    def skipped(self, ann: Ann, reason: str, detail: str | None = None) -> None:
        self.record(ann, "skipped", reason, detail)

    def modified(self, ann: Ann, reason: str, detail: str | None = None) -> None:
        self.record(ann, "modified", reason, detail)

    def removed(self, ann: Ann, reason: str, detail: str | None = None) -> None:
        self.record(ann, "removed", reason, detail)

    def added(self, ann: Ann, reason: str | None = None, detail: str | None = None) -> None:
        self.record(ann, "added", reason, detail)

    def update(self, other: Accounting) -> None:
        """Add ``other``'s counts, reasons and log into this ledger (e.g. one per shard)."""
        for cat, counter in other.counts.items():
            self.counts[cat].update(counter)
        for outcome, counter in other.reasons.items():
            self.reasons[outcome].update(counter)
        self.log.extend(other.log)
        self.names = {**other.names, **self.names}

    # -- sums --------------------------------------------------------------------------------
    def n_input(self, category_id: int | None = None) -> int:
        """Annotations accounted for as input (every outcome but ``added``)."""
        return self._sum(FROM_INPUT, category_id)

    def n_output(self, category_id: int | None = None) -> int:
        """Annotations that the recorded outcomes put in the output."""
        return self._sum(IN_OUTPUT, category_id)

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    def _sum(self, outcomes: frozenset[str], category_id: int | None) -> int:
        counters = self.counts.values() if category_id is None else [self.counts[category_id]]
        return sum(c[o] for c in counters for o in outcomes)

    def check(
        self, inputs: Iterable[Mapping[str, Any]], outputs: Iterable[Mapping[str, Any]]
    ) -> None:
        """Raise :class:`AccountingError` unless the ledger explains ``inputs`` -> ``outputs``.

        Per category: inputs == every outcome except ``added``; outputs == the in-output outcomes
        (``added`` included). A stage calls this before writing, so a forgotten annotation is a
        crash in tests rather than silent drift.
        """
        n_in = Counter(int(a["category_id"]) for a in inputs)
        n_out = Counter(int(a["category_id"]) for a in outputs)
        problems = []
        for cat in sorted(set(n_in) | set(n_out) | set(self.counts)):
            if n_in[cat] != self.n_input(cat):
                problems.append(f"category {cat}: {n_in[cat]} inputs, {self.n_input(cat)} recorded")
            if n_out[cat] != self.n_output(cat):
                problems.append(
                    f"category {cat}: {n_out[cat]} outputs, {self.n_output(cat)} recorded"
                )
        if problems:
            raise AccountingError(
                f"{self.stage} accounting does not add up: " + "; ".join(problems)
            )

    # -- output ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary: totals, per-category rows (by id), reasons, log and extras."""
        totals = {"input": self.n_input(), "output": self.n_output()}
        totals.update({o: self.total(o) for o in OUTCOMES})
        rows = []
        for cat in sorted(self.counts):
            row: dict[str, Any] = {"id": cat, "name": self.names.get(cat, "")}
            row["input"] = self.n_input(cat)
            row["output"] = self.n_output(cat)
            row.update({o: self.counts[cat][o] for o in OUTCOMES})
            rows.append(row)
        reasons = {
            o: dict(sorted(self.reasons[o].items())) for o in OUTCOMES if self.reasons.get(o)
        }
        return {
            "stage": self.stage,
            "totals": totals,
            "categories": rows,
            "reasons": reasons,
            "log": list(self.log),
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON, atomically; returns ``path``."""
        from rem_core.io import save_json

        save_json(path, self.to_dict())
        return Path(path)

    def table(self, title: str | None = None) -> Table:
        """A rich table: one row per category with a non-zero count, then a total row."""
        used = [o for o in OUTCOMES if self.total(o)]
        table = Table(title=title or f"rem {self.stage}: annotation accounting")
        table.add_column("category")
        for col in ("input", *used, "output"):
            table.add_column(col, justify="right")
        for cat in sorted(self.counts):
            label = f"{cat} {self.names.get(cat, '')}".rstrip()
            cells = [self.n_input(cat), *(self.counts[cat][o] for o in used), self.n_output(cat)]
            table.add_row(label, *map(str, cells))
        table.add_section()
        cells = [self.n_input(), *(self.total(o) for o in used), self.n_output()]
        table.add_row("total", *map(str, cells), style="bold")
        return table
