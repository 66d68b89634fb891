"""ViTDet Mask R-CNN inference speed at 1024 x 1024 (ViTDet-B, random weights).

The compute does not depend on the weights' values, so random weights measure the real model.
On CPU it reports float32 images/s. On CUDA it also reports bf16 autocast images/s, the achieved
TFLOP/s of the forward (counted with torch.utils.flop_counter on the same input) and the measured
bf16 matmul rate of the same GPU, so the two can be compared. There is no peer in the run:
detectron2 cannot be installed on this stack; the parity tests pin rem's outputs to its own.

``--quick`` / REM_BENCH_QUICK=1 runs the tiny ``vitdet_test`` variant at 128 x 128.

Usage: python benchmarks/bench_vitdet.py [--quick] [--out DIR] [--images N]
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from script_args import emit, parser, quick_mode
from torch.utils.flop_counter import FlopCounterMode


def _images_per_second(model, images, device: str, bf16: bool) -> float:
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.inference_mode(), autocast:
        model([images[0]])  # warm-up: kernels, caches
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for image in images:
            model([image])
        if device == "cuda":
            torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


def _forward_flops(model, image) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model([image])
    return counter.get_total_flops()


def _bf16_matmul_tflops(device: str, n: int = 8192, reps: int = 20) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def main(out_dir: Path, quick: bool | None = None, num_images: int | None = None) -> dict:
    from rem_models import get_model

    quick = quick_mode(quick)
    name, size = ("vitdet_test", 128) if quick else ("vitdet_b", 1024)
    num_images = num_images or (2 if quick else 3)
    torch.manual_seed(0)
    model = get_model(name).eval()
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=generator) * 255 for _ in range(num_images)]

    figures: dict = {
        "model": name,
        "input": [size, size],
        "images": num_images,
        "parameters": sum(p.numel() for p in model.parameters()),
        "cpu_threads": torch.get_num_threads(),
        "cpu_fp32_images_per_s": round(_images_per_second(model, images, "cpu", False), 4),
    }
    if torch.cuda.is_available():
        model = model.cuda()
        gpu_images = [image.cuda() for image in images] * (5 if not quick else 1)
        flops = _forward_flops(model, gpu_images[0])
        fp32 = _images_per_second(model, gpu_images, "cuda", False)
        bf16 = _images_per_second(model, gpu_images, "cuda", True)
        peak = _bf16_matmul_tflops("cuda")
        figures.update(
            gpu=torch.cuda.get_device_name(0),
            gflop_per_image=round(flops / 1e9, 1),
            cuda_fp32_images_per_s=round(fp32, 2),
            cuda_bf16_images_per_s=round(bf16, 2),
            cuda_bf16_achieved_tflops=round(flops * bf16 / 1e12, 1),
            cuda_bf16_matmul_tflops=round(peak, 1),
            fraction_of_matmul_rate=round(flops * bf16 / 1e12 / peak, 3),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vitdet.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--images", type=int, default=None)
    args = p.parse_args()
    emit(main(args.out, quick=args.quick or None, num_images=args.images))
