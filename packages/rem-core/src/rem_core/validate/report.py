"""What a validation found: errors with their JSON path, and warnings as counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

# Errors kept for printing; beyond this they are only counted (a broken 860k-record file could
# otherwise hold millions of messages).
MAX_KEPT_ERRORS = 10_000


@dataclass(frozen=True)
class Issue:
    """One error: ``where`` is a JSON path such as ``annotations[12].bbox``."""

    where: str
    message: str


@dataclass
class Report:
    """Errors make a file invalid; warnings count messy-but-legal records (no failure)."""

    path: str
    kind: str = "coco"
    errors: list[Issue] = field(default_factory=list)
    error_count: int = 0
    warnings: Counter[str] = field(default_factory=Counter)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def error(self, where: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(Issue(where, message))

    def warn(self, what: str, n: int = 1) -> None:
        """Count ``n`` records of a kind, e.g. ``warn("images without annotations")``."""
        if n:
            self.warnings[what] += n

    def pydantic_errors(self, where: str, exc: ValidationError) -> None:
        """Add each error of a pydantic validation, its location appended to ``where``."""
        for err in exc.errors(include_url=False):
            self.error(join_path(where, err["loc"]), describe(err))

    def lines(self, max_errors: int | None = None) -> list[str]:
        """The report as ``FILE: WHERE: message`` lines, then warnings, then a summary line."""
        shown = self.errors if max_errors is None else self.errors[:max_errors]
        out = [f"{self.path}: {issue.where}: {issue.message}" for issue in shown]
        hidden = self.error_count - len(shown)
        if hidden:
            out.append(f"{self.path}: ... {hidden} more errors not shown")
        for what, n in sorted(self.warnings.items()):
            out.append(f"{self.path}: warning: {n} {what}")
        out.append(self.summary())
        return out

    def summary(self) -> str:
        sizes = ", ".join(f"{n} {name}" for name, n in self.counts.items())
        sizes = f" ({self.kind}: {sizes})" if sizes else f" ({self.kind})"
        if self.ok:
            return f"{self.path}: ok{sizes}"
        noun = "error" if self.error_count == 1 else "errors"
        return f"{self.path}: {self.error_count} {noun}{sizes}"


def join_path(where: str, loc: tuple[Any, ...] | list[Any]) -> str:
    """``join_path("images[3]", ("size", 0))`` -> ``images[3].size[0]``."""
    out = where
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def describe(err: Any) -> str:
    """A pydantic error as a short message that shows the offending value."""
    if err["type"] == "missing":
        return "missing required field"
    value = repr(err.get("input"))
    if len(value) > 60:
        value = value[:57] + "..."
    return f"{err['msg']} (got {value})"


def type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
