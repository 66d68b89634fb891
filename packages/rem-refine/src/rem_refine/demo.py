"""`rem demo` step "20-refine": refine the coarse synthetic annotations.

With a SAM checkpoint available (``$REM_SAM_CHECKPOINT``, or a cached ``rem weights download``
file: MobileSAM first, being the fastest on a CPU) the demo runs SAM; otherwise the weight-free
GrabCut backend. It writes ``refined.json`` into the demo folder, sets
``ctx.artifacts["refined"]`` for the evaluation step, and prints the mean Boundary IoU of the
coarse and the refined masks against the exact ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rem_core.demo import DemoContext
from rem_core.io import iscrowd, read_json
from rem_core.masks import boundary_band, decode, to_rle

# The order to try cached weights in: cheapest first, since the demo must stay quick on a CPU.
_DEMO_WEIGHTS = ("mobile_sam", "sam_vit_b", "sam_vit_l", "sam_vit_h")


def _find_sam() -> tuple[str, Path] | None:
    """(arch, checkpoint) of a usable SAM, or None."""
    from rem_refine.weights import WEIGHTS, cached_path

    env = os.environ.get("REM_SAM_CHECKPOINT")
    if env:
        arch = os.environ.get("REM_SAM_ARCH", "vit_h")
        return arch, Path(env)
    for name in _DEMO_WEIGHTS:
        path = cached_path(name)
        if path.is_file():
            return WEIGHTS[name].arch, path
    return None


def mean_boundary_iou(reference: Path, candidate: Path) -> tuple[float, int]:
    """Mean Boundary IoU over non-crowd annotations of ``reference`` matched by id in
    ``candidate``; returns (mean, number of pairs)."""
    ref = read_json(reference)
    cand = {a["id"]: a for a in read_json(candidate)["annotations"]}
    sizes = {img["id"]: (img["height"], img["width"]) for img in ref["images"]}
    scores = []
    for ann in ref["annotations"]:
        if iscrowd(ann) or ann["id"] not in cand:
            continue
        h, w = sizes[ann["image_id"]]
        a = boundary_band(decode(to_rle(ann["segmentation"], h, w)))
        b = boundary_band(decode(to_rle(cand[ann["id"]]["segmentation"], h, w)))
        union = int(np.logical_or(a, b).sum())
        scores.append(int(np.logical_and(a, b).sum()) / union if union else 1.0)
    return (float(np.mean(scores)) if scores else float("nan")), len(scores)


def step(ctx: DemoContext) -> None:
    from rem_refine.partial import partial_dir
    from rem_refine.stage1 import RefineConfig, run_refine

    coarse = ctx.artifacts["coarse"]
    images = ctx.artifacts["images"]
    output = ctx.out_dir / "refined.json"
    # A demo run is disposable: never resume a half-finished earlier one.
    stale = partial_dir(output)
    if stale.exists():
        import shutil

        shutil.rmtree(stale)

    sam = _find_sam()
    common = dict(
        input_json=coarse,
        output=output,
        image_dirs=(images,),
        seed=ctx.seed,
        box_only_names=(),
        progress=False,
        workers=min(4, os.cpu_count() or 1),
    )
    if sam is not None:
        arch, checkpoint = sam
        ctx.console.print(f"refine: SAM {arch} from {checkpoint}", highlight=False)
        config = RefineConfig(
            backend="sam", arch=arch, checkpoint=checkpoint, device=ctx.device, **common
        )
    else:
        ctx.console.print(
            "refine: no SAM checkpoint found (`rem weights download mobile_sam`); "
            "using the weight-free GrabCut backend",
            highlight=False,
        )
        config = RefineConfig(backend="grabcut", **common)
    run_refine(config, console=ctx.console)
    ctx.artifacts["refined"] = output

    exact = ctx.artifacts.get("exact")
    if exact is not None:
        before, n = mean_boundary_iou(exact, coarse)
        after, _ = mean_boundary_iou(exact, output)
        ctx.console.print(
            f"refine: mean Boundary IoU vs exact masks over {n} instances: "
            f"coarse {before:.3f} -> refined {after:.3f}",
            highlight=False,
        )
