"""``rem convert-checkpoint``: a released checkpoint in, a rem safetensors checkpoint out.

The family's converter (``register_model(..., converter=...)``) maps the official tensor names
and layouts onto the rem model (a ``read_file(path, file_format)`` attribute on it replaces the
generic file loader); the result must load strictly, so a converter that misses or
misshapes a tensor fails here rather than producing a silently half-initialised model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rem_core.errors import RemError
from rem_core.io import load_coco
from rem_models.checkpoints import load_state_dict_file, save_checkpoint_safetensors
from rem_models.engine.categories import CATEGORIES_KEY, CategoryMap
from rem_models.engine.run_train import split_overrides
from rem_models.overrides import override_config
from rem_models.registry import get_model, get_model_entry
from rem_models.weights import FileFormat


def convert_checkpoint_file(
    arch: str,
    source: str | Path,
    dest: str | Path,
    *,
    file_format: FileFormat | None = None,
    overrides: Sequence[str] = (),
    categories_file: str | Path | None = None,
) -> Path:
    """Convert ``source`` (an official file of ``arch``) to ``dest`` (rem safetensors).

    ``overrides`` are ``model.key=value`` (or bare ``key=value``) config items. The category
    mapping stored with the weights comes from ``categories_file`` (a COCO file), else the 80
    COCO categories for an 80-class model, else none.
    """
    entry = get_model_entry(arch)
    if entry.converter is None:
        raise RemError(f"model {arch!r} has no checkpoint converter")
    model_over, bare = split_overrides(overrides)
    config = override_config(entry.config, {**bare, **model_over})
    # A converter may bring its own reader for files the generic loader refuses or trims (LAVT
    # snapshots pickle an argparse.Namespace and keep BERT beside the model).
    reader = getattr(entry.converter, "read_file", None)
    state = reader(source, file_format) if reader else load_state_dict_file(source, file_format)
    converted = entry.converter(state, config)
    model = get_model(arch, config)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise RemError(
            f"converted weights do not fit {arch!r}: {' '.join(lines[:3])}", path=source
        ) from None
    metadata = {"rem.source": Path(source).name}
    num_classes = getattr(config, "num_classes", None)
    categories = None
    if categories_file is not None:
        categories = CategoryMap.from_categories(load_coco(categories_file).categories)
    elif num_classes == 80:
        from rem_core.synth.coco_categories import coco_category_dicts

        categories = CategoryMap.from_categories(coco_category_dicts())
    if categories is not None:
        if num_classes is not None and len(categories) != num_classes:
            raise RemError(
                f"{len(categories)} categories for a model with {num_classes} classes",
                path=categories_file,
            )
        metadata[CATEGORIES_KEY] = categories.to_json()
    # Save what the model holds (not the converter's dict) so tied or derived tensors match.
    return save_checkpoint_safetensors(
        dest, model.state_dict(), config, arch=arch, metadata=metadata
    )
