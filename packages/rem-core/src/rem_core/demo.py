"""The `rem demo` pipeline and its extension point.

rem-core's demo makes a synthetic sample (exact masks, coarse masks, images), validates it and
prints its summary. Other packages extend it through the entry-point group ``rem.demo_steps``:
each entry point is a callable taking a :class:`DemoContext`, run in the order of the entry-point
names (``20-refine``, ``30-eval``, ``40-viz``...). A step reads the paths earlier steps put in
``ctx.artifacts`` and adds its own, so installing a package adds its part of the demo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from rich.console import Console

DEMO_STEPS_GROUP = "rem.demo_steps"


@dataclass
class DemoContext:
    """What the demo steps share.

    ``artifacts`` holds named paths: rem-core sets ``"images"`` (image folder), ``"exact"`` (the
    exact ground-truth masks), ``"coarse"`` (degraded annotations of the same instances) and
    ``"predictions"`` (scored detections); later steps add e.g. ``"refined"`` or ``"report"``.
    """

    out_dir: Path
    seed: int
    console: Console
    artifacts: dict[str, Path] = field(default_factory=dict)
    device: str = "cpu"


DemoStep = Callable[[DemoContext], None]


def demo_steps() -> list[tuple[str, DemoStep]]:
    """Installed demo steps, sorted by entry-point name; importing happens here, not at start."""
    eps = sorted(entry_points(group=DEMO_STEPS_GROUP), key=lambda ep: ep.name)
    return [(ep.name, ep.load()) for ep in eps]
