"""SeqTR inference speed on CPU: images/s for the box (REC) and mask (RES) tasks.

Models: the tiny ``seqtr_test_box`` / ``seqtr_test_mask`` / ``pres_test_mask`` always; with
full scale (no ``--quick`` / REM_BENCH_QUICK=1) also the published ``seqtr_rec``, ``seqtr_res``
and ``pres_res`` at 640x480 input (random weights: speed does not depend on them). There is
no peer in the run: SeqTR's own code needs mmcv 1.x / mmdet 2.x and CUDA. The ratios are
internal: mask decoding (2*num_ray+1 greedy steps) against box decoding (4 steps), and
Partial-RES against SeqTR RES.

Usage: python benchmarks/bench_seqtr.py [--quick] [--out DIR]
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from script_args import emit, parser, quick_mode


def _images_per_s(name: str, size: tuple[int, int], count: int, batch: int) -> float:
    import torch

    from rem_models import get_model

    torch.manual_seed(0)
    model = get_model(name).eval()
    h, w = size
    images = torch.rand(batch, 3, h, w) * 255
    ids = torch.randint(2, 30, (batch, 8))
    sizes = [(h, w)] * batch
    with torch.no_grad():
        model(images, sizes, ids)  # warm-up
        start = time.perf_counter()
        done = 0
        while done < count:
            model(images, sizes, ids)
            done += batch
        seconds = time.perf_counter() - start
    return round(done / seconds, 3)


def main(out_dir: Path, quick: bool | None = None) -> dict:
    import torch

    quick = quick_mode(quick)
    # one thread: steadier figures on shared machines; the per-image work is small
    torch.set_num_threads(1)
    figures: dict[str, dict] = {}
    for name in ("seqtr_test_box", "seqtr_test_mask", "pres_test_mask"):
        figures[name] = {
            "input": [64, 64],
            "images_per_s_batch1": _images_per_s(name, (64, 64), 8 if quick else 32, 1),
            "images_per_s_batch8": _images_per_s(name, (64, 64), 16 if quick else 64, 8),
        }
    if not quick:
        for name in ("seqtr_rec", "seqtr_res", "pres_res"):
            figures[name] = {
                "input": [480, 640],
                "images_per_s_batch1": _images_per_s(name, (480, 640), 3, 1),
            }
    ratios = {
        "tiny_box_over_mask_x": round(
            figures["seqtr_test_box"]["images_per_s_batch1"]
            / figures["seqtr_test_mask"]["images_per_s_batch1"],
            2,
        ),
        "tiny_seqtr_over_pres_x": round(
            figures["seqtr_test_mask"]["images_per_s_batch1"]
            / figures["pres_test_mask"]["images_per_s_batch1"],
            2,
        ),
    }
    if not quick:
        ratios["rec_over_res_x"] = round(
            figures["seqtr_rec"]["images_per_s_batch1"]
            / figures["seqtr_res"]["images_per_s_batch1"],
            2,
        )
    result = {
        "area": "seqtr",
        "quick": quick,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "peer": None,
        "figures": figures,
        "ratios": ratios,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "seqtr.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    args = parser(__doc__).parse_args()
    emit(main(args.out, args.quick or None))
