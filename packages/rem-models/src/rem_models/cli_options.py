"""Options `rem train` and `rem predict` share, so both say and resolve them the same way."""

from __future__ import annotations

from pathlib import Path

import click

device_option = click.option(
    "--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)."
)

refer_instances_option = click.option(
    "--instances",
    type=click.Path(path_type=Path),
    default=None,
    help="With --refs: the instances.json of a refer refs(*).p (default: beside it).",
)


def resolve_device(device: str | None) -> str:
    """``--device`` as given, else ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")
