"""The progress bar every long rem command shows: label, bar, done / total, then timing columns.

It draws only on a terminal, so logs and pipes stay free of bar redraws.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)


def progress_bar(
    console: Console,
    label: str = "{task.description}",
    *,
    tail: Sequence[ProgressColumn] | None = None,
    transient: bool = False,
    enabled: bool = True,
) -> Progress:
    """A :class:`rich.progress.Progress`; ``tail`` replaces the default time-remaining column."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *(tail if tail is not None else (TimeRemainingColumn(),)),
        console=console,
        transient=transient,
        disable=not (enabled and console.is_terminal),
    )
