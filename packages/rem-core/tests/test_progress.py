"""The shared progress bar draws on terminals only, and only when enabled."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import TimeElapsedColumn, TimeRemainingColumn

from rem_core.progress import progress_bar


def test_drawn_on_a_terminal_only_and_when_enabled():
    terminal = Console(file=io.StringIO(), force_terminal=True)
    pipe = Console(file=io.StringIO(), force_terminal=False)
    assert not progress_bar(terminal).disable
    assert progress_bar(pipe).disable
    assert progress_bar(terminal, enabled=False).disable


def test_columns_label_bar_count_then_tail():
    console = Console(file=io.StringIO(), force_terminal=True)
    default = progress_bar(console, "work").columns
    assert [type(c).__name__ for c in default] == [
        "TextColumn",
        "BarColumn",
        "MofNCompleteColumn",
        "TimeRemainingColumn",
    ]
    assert default[0].text_format == "work"
    tail = progress_bar(console, tail=(TimeElapsedColumn(), TimeRemainingColumn())).columns
    assert [type(c).__name__ for c in tail[3:]] == ["TimeElapsedColumn", "TimeRemainingColumn"]
