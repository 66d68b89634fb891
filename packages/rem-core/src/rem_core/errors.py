"""User-facing errors: one line naming the file, the record and the field; exit code 2."""

from __future__ import annotations

from pathlib import Path


class RemError(Exception):
    """An error caused by the user's input, shown as one line without a traceback.

    The message should name the file, the record (JSON path such as ``annotations[12]``) and the
    field, so a user can find the problem in a file of a million records.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, where: str | None = None):
        self.path = None if path is None else str(path)
        self.where = where
        self.detail = message
        super().__init__(self.format())

    def format(self) -> str:
        parts = [p for p in (self.path, self.where) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.detail}" if prefix else self.detail
