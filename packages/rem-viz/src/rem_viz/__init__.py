"""rem-viz: look at instance masks — overlays, before/after comparisons, HTML reports, plots.

The notebook API returns numpy images (RGB, (H, W, 3) uint8) and matplotlib figures::

    from rem_viz import load_annotation_set, overlay_from_set, compare_sets, pr_curves

Names are imported on first use, so ``import rem_viz`` stays cheap for the CLI.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("rem-viz")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

_EXPORTS = {
    "AnnotationSet": "instances",
    "Instance": "instances",
    "label_text": "instances",
    "load_annotation_set": "instances",
    "load_detection_set": "instances",
    "MaskCrop": "crops",
    "category_color": "palette",
    "paint_instances": "draw",
    "overlay": "overlays",
    "overlay_from_set": "overlays",
    "render_overlays": "overlays",
    "RenderSummary": "overlays",
    "resolve_categories": "selection",
    "select_images": "selection",
    "difference_view": "difference",
    "Comparison": "compare",
    "InstanceChange": "compare",
    "compare_image": "compare",
    "compare_sets": "compare",
    "summarize_by_category": "compare",
    "write_comparison": "compare",
    "Card": "gallery",
    "SortOption": "gallery",
    "write_gallery": "gallery",
    "comparison_report": "reports",
    "overlay_report": "reports",
    "ap_per_category": "plots",
    "ap_per_threshold": "plots",
    "ap_threshold_curves": "plots",
    "category_ap_bars": "plots",
    "pr_curves": "plots",
    "save_figure": "plots",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rem_viz' has no attribute {name!r}")
    value = getattr(import_module(f"rem_viz.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
