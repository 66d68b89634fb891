"""Dataset category ids <-> the contiguous 0-based labels a model predicts.

COCO ids run 1..90 with gaps and LVIS ids 1..1203; models index classes 0..K-1. The mapping is
the categories sorted by id (detectron2's convention), so the same file always gives the same
labels, and it is saved beside trained weights so predictions map back to the right ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rem_core.errors import RemError

# Metadata key of a rem safetensors checkpoint holding the label -> category mapping (JSON).
CATEGORIES_KEY = "rem.categories"


@dataclass(frozen=True)
class CategoryMap:
    """Categories in label order: ``ids[label]`` is the dataset id, ``names[label]`` its name."""

    ids: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def from_categories(cls, categories: Iterable[Mapping[str, Any]]) -> CategoryMap:
        """Build from COCO ``categories`` records (any order; sorted by id here)."""
        records = sorted(categories, key=lambda c: c["id"])
        ids = tuple(int(c["id"]) for c in records)
        if len(set(ids)) != len(ids):
            raise RemError("duplicate category ids", where="categories")
        return cls(ids, tuple(str(c.get("name", c["id"])) for c in records))

    def __len__(self) -> int:
        return len(self.ids)

    def __post_init__(self) -> None:
        # A lookup table built once: label lookups happen per annotation.
        object.__setattr__(self, "_index", {cid: i for i, cid in enumerate(self.ids)})

    def to_label(self, category_id: int) -> int:
        """The contiguous label of a dataset category id; RemError when it is not listed."""
        try:
            return self._index[category_id]  # type: ignore[attr-defined]
        except KeyError:
            raise RemError(f"category_id {category_id!r} is not among the categories") from None

    def has(self, category_id: int) -> bool:
        return category_id in self._index  # type: ignore[attr-defined]

    def to_category_id(self, label: int) -> int:
        """The dataset category id of a predicted label."""
        if not 0 <= label < len(self.ids):
            raise IndexError(f"label {label} outside 0..{len(self.ids) - 1}")
        return self.ids[label]

    def to_records(self) -> list[dict[str, Any]]:
        """``[{"id": ..., "name": ...}]`` in label order (for metadata and results headers)."""
        return [{"id": i, "name": n} for i, n in zip(self.ids, self.names)]

    def to_json(self) -> str:
        return json.dumps(self.to_records())

    @classmethod
    def from_json(cls, text: str) -> CategoryMap:
        records: Sequence[Mapping[str, Any]] = json.loads(text)
        # Stored in label order already; keep it (do not re-sort a saved mapping).
        return cls(tuple(int(r["id"]) for r in records), tuple(str(r["name"]) for r in records))
