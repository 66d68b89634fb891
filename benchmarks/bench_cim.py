"""CIM speed on CPU: proposal grouping, training iterations/s and inference images/s.

Data: the synthetic sample (``rem_core.synth.make_sample``, 640x480, 6 categories) with
selective-search proposals. Models: ``cim_test`` (tiny) and, unless ``--quick`` /
REM_BENCH_QUICK=1, ``cim_r50`` (the published architecture, ~250M parameters) at the images' own
size. There is no peer to race: CIM's own code needs CUDA and a 2019 detectron-era stack, so the
ratios reported are internal (published 10-view TTA vs a single view).

Usage: python benchmarks/bench_cim.py [--quick] [--out DIR]
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from script_args import emit, parser, quick_mode


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else float("inf")


def _model_figures(name: str, samples, iterations: int, num_classes: int) -> dict:
    import torch

    from rem_models import get_model
    from rem_models.cim.inference import score_proposals
    from rem_models.cim.train import CimTrainSettings, train_cim

    torch.manual_seed(0)
    model = get_model(name, num_classes=num_classes)
    settings = CimTrainSettings(iterations=1, step=10**9, lr=1e-3, scales=(), flip=True)
    train_cim(model, samples, settings)  # warm-up: allocator, first-call costs
    settings = CimTrainSettings(iterations=iterations, step=10**9, lr=1e-3, scales=(), flip=True)
    start = time.perf_counter()
    train_cim(model, samples, settings)
    train_s = time.perf_counter() - start
    model.eval()
    score_proposals(model, samples[0])
    start = time.perf_counter()
    for s in samples:
        score_proposals(model, s)
    single_s = time.perf_counter() - start
    tta = samples[: max(1, len(samples) // 4)]
    start = time.perf_counter()
    for s in tta:
        score_proposals(model, s, scales=[480, 576, 688, 864, 1000], flip=True)
    tta_s = time.perf_counter() - start
    single_rate, tta_rate = _rate(len(samples), single_s), _rate(len(tta), tta_s)
    return {
        "train_iterations_per_s": _rate(iterations, train_s),
        "inference_images_per_s": single_rate,
        "inference_tta10_images_per_s": tta_rate,
        "tta10_slowdown_x": round(single_rate / tta_rate, 2),
    }


def main(out_dir: Path, quick: bool | None = None) -> dict:
    quick = quick_mode(quick)
    import numpy as np
    import torch

    from rem_core.io import load_coco
    from rem_core.synth import make_sample
    from rem_models.cim.dataset import load_samples
    from rem_models.cim.superpixel_proposals import selective_search

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    images = 4 if quick else 16
    result: dict = {
        "area": "cim",
        "quick": quick,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "peer": None,
    }
    with tempfile.TemporaryDirectory(prefix="rem-bench-cim-") as tmp:
        sample = make_sample(Path(tmp) / "s", num_images=images, seed=0, image_format="png")
        coco = load_coco(sample.exact)
        start = time.perf_counter()
        samples = load_samples(coco, sample.image_dir, selective_search)
        grouping_s = time.perf_counter() - start
    samples = [s for s in samples if len(s.masks) and s.labels.any()]
    result["images"] = f"{images} synthetic 640x480"
    result["proposals_per_image"] = round(float(np.mean([len(s.masks) for s in samples])), 1)
    result["selective_search_images_per_s"] = _rate(images, grouping_s)
    num_classes = len(coco.cats)
    result["cim_test"] = _model_figures("cim_test", samples, 20 if quick else 100, num_classes)
    if not quick:
        result["cim_r50"] = _model_figures("cim_r50", samples, 10, num_classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cim.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    args = parser(__doc__).parse_args()
    emit(main(args.out, quick=args.quick or None))
