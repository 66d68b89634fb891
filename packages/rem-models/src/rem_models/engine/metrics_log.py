"""The run's metrics as JSON lines (one record per logged step or evaluation) and live progress.

``metrics.jsonl`` is appended and flushed record by record, so a crashed run keeps what it
logged. On resume from step ``s`` the records of later steps (logged after that snapshot by the
interrupted run) are removed first, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rem_core.atomic import atomic_write_text
from rem_core.progress import progress_bar


class MetricsLog:
    """Append-only JSONL writer; ``enabled=False`` on non-main processes writes nothing."""

    def __init__(self, path: Path, *, start_step: int = 0, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._truncate_after(start_step)

    def _truncate_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if record.get("step", 0) <= step:
                kept.append(line)
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")
            f.flush()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file (for tests and plots)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class TrainProgress:
    """A rich progress bar on a terminal; plain log lines otherwise (batch jobs, CI)."""

    def __init__(self, console: Console, total: int, start: int, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self.progress = progress_bar(
            console,
            "[bold]train",
            tail=(TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}")),
            enabled=enabled,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, status="")

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def advance(self, step: int, status: str | None = None) -> None:
        """Mark ``step`` optimiser steps done; ``status`` is shown (or printed when not live)."""
        if not self.enabled:
            return
        if status is not None:
            self.progress.update(self.task, status=status)
        self.progress.update(self.task, completed=step)
        if status is not None and not self.live:
            self.console.print(f"step {step}/{self.progress.tasks[0].total}: {status}")

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)
