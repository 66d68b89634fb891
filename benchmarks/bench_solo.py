"""SOLOv2-R50 inference speed at 800 x 1333 on the CPU: rem's model vs the reference's steps.

Both sides share one ``solov2_r50_3x`` network (46.6 M parameters, random weights: no released
file can be downloaded here; the compute does not depend on the values) and one input image
(batch 1, float32, ``torch.inference_mode``). Untrained category scores would all sit at the
0.01 prior, below the 0.1 threshold, so the category bias of two classes is raised to give a
realistic, fully loaded post-processing (hundreds of candidates, ``nms_pre`` = 500 reached).

- rem: ``model(images)``: the network, then rem's post-processing (masks of candidate cells
  only, computed once per cell in chunks; vectorised Matrix NMS; masks pasted in chunks).
- peer: the same network outputs through the reference's ``get_seg_single`` steps (a mask per
  candidate (cell, class) pair, all at once; every kept mask upsampled at once).
The detections of both are compared (same scores, labels and masks).

Also: Matrix NMS, vectorised vs a direct loop over mask pairs (its definition).
``--quick`` / REM_BENCH_QUICK=1: a 320 x 512 image, one repetition.

Usage: python benchmarks/bench_solo.py [--quick] [--out DIR]
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from script_args import emit, parser, quick_mode


def _timed(fn, reps: int) -> tuple[float, object]:
    out = fn()  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return (time.perf_counter() - start) / reps, out


def reference_postprocess(model, outputs, image_size, pad, out_size):
    """The reference's SOLOv2 ``get_seg_single`` on one image's network outputs."""
    from rem_models.solo.layers import points_nms
    from rem_models.solo.matrix_nms import matrix_nms

    head, cfg = model.bbox_head, model.test_cfg
    cate = torch.cat(
        [
            points_nms(c[:1].sigmoid())[0].permute(1, 2, 0).reshape(-1, head.num_classes)
            for c in outputs["cate"]
        ]
    )
    kernels = torch.cat([k[0].flatten(1).T for k in outputs["kernels"]])
    feature = outputs["feature"][:1]
    strides = torch.cat(
        [torch.full((s * s,), float(st)) for s, st in zip(head.grids, head.strides)]
    )
    inds = (cate > cfg.score_thr).nonzero()
    scores, labels = cate[inds[:, 0], inds[:, 1]], inds[:, 1]
    seg = F.conv2d(feature, kernels[inds[:, 0]][:, :, None, None]).squeeze(0).sigmoid()
    masks = seg > cfg.mask_thr
    sums = masks.sum((1, 2)).float()
    keep = sums > strides[inds[:, 0]]
    masks, seg, sums, scores, labels = (
        masks[keep],
        seg[keep],
        sums[keep],
        scores[keep],
        labels[keep],
    )
    scores = scores * (seg * masks.float()).sum((1, 2)) / sums
    order = torch.argsort(scores, descending=True)[: cfg.nms_pre]
    masks, seg, sums, scores, labels = (
        masks[order],
        seg[order],
        sums[order],
        scores[order],
        labels[order],
    )
    scores = matrix_nms(masks, labels, scores, kernel=cfg.kernel, sigma=cfg.sigma, areas=sums)
    keep = scores >= cfg.update_thr
    seg, scores, labels = seg[keep], scores[keep], labels[keep]
    order = torch.argsort(scores, descending=True)[: cfg.max_per_img]
    seg, scores, labels = seg[order], scores[order], labels[order]
    seg = F.interpolate(seg[None], size=pad, mode="bilinear")[
        :, :, : image_size[0], : image_size[1]
    ]
    final = F.interpolate(seg, size=out_size, mode="bilinear")[0] > cfg.mask_thr
    return final, scores, labels


def loop_matrix_nms(masks, labels, scores, sigma=2.0):
    n = len(scores)
    flat = masks.reshape(n, -1)

    def iou(i, j):
        inter = float((flat[i] & flat[j]).sum())
        return inter / float((flat[i] | flat[j]).sum())

    comp = [max([iou(k, i) for k in range(i) if labels[k] == labels[i]] or [0.0]) for i in range(n)]
    out = []
    for j in range(n):
        decay = 1.0
        for i in range(j):
            if labels[i] == labels[j]:
                decay = min(
                    decay, torch.exp(torch.tensor(-sigma * (iou(i, j) ** 2 - comp[i] ** 2))).item()
                )
        out.append(float(scores[j]) * decay)
    return torch.tensor(out)


def main(out_dir: Path, quick: bool | None = None) -> dict:
    from rem_models import get_model
    from rem_models.solo.layers import points_nms
    from rem_models.solo.matrix_nms import matrix_nms
    from rem_models.solo.resize import rescaled_size, resize_image

    quick = quick_mode(quick)
    h, w = (320, 512) if quick else (800, 1333)
    reps = 1 if quick else 3
    torch.manual_seed(0)
    model = get_model("solov2_r50_3x").eval()
    with torch.no_grad():
        model.bbox_head.solo_cate.bias[:2] = -1.6  # sigmoid ~0.17: many candidates
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)) * 255
    size = rescaled_size(h, w, model.test_scale)

    with torch.inference_mode():
        rem_s, dets = _timed(lambda: model([image]), reps)
        batch, pad = model._pad([resize_image(image, size)])
        net_s, outputs = _timed(lambda: model.features(batch), reps)
        ours_s, _ = _timed(lambda: model.bbox_head.instances(outputs, 0, model.test_cfg), reps)
        peer_s, peer = _timed(
            lambda: reference_postprocess(model, outputs, size, pad, (h, w)), reps
        )
        cells = torch.cat([points_nms(c.sigmoid())[0].flatten() for c in outputs["cate"]])
    candidates = int((cells > model.test_cfg.score_thr).sum())
    det = dets[0]
    same = (
        det["labels"].tolist() == peer[2].tolist()
        and torch.allclose(det["scores"], peer[1], atol=1e-5)
        and torch.equal(det["masks"], peer[0])
    )

    n = min(det["masks"].shape[0], 60 if quick else 100)
    small = F.interpolate(det["masks"][None, :n].float(), scale_factor=0.25)[0] > 0.5
    labels, scores = det["labels"][:n], det["scores"][:n]
    vec_s, vec = _timed(lambda: matrix_nms(small, labels, scores), 5)
    start = time.perf_counter()
    loop = loop_matrix_nms(small, labels, scores)
    loop_s = time.perf_counter() - start

    result = {
        "area": "solo",
        "model": "solov2_r50_3x",
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "image": [h, w],
        "repetitions": reps,
        "end_to_end_images_per_s": round(1.0 / rem_s, 3),
        "network_seconds": round(net_s, 3),
        "candidates_above_score_thr": candidates,
        "detections": int(det["scores"].numel()),
        "postprocess_seconds": {"rem": round(ours_s, 4), "reference_steps": round(peer_s, 4)},
        "postprocess_speedup_vs_reference": round(peer_s / ours_s, 2),
        "same_detections_as_reference_steps": bool(same),
        "matrix_nms": {
            "masks": n,
            "vectorised_seconds": round(vec_s, 5),
            "loop_seconds": round(loop_s, 3),
            "speedup": round(loop_s / vec_s, 1),
            "max_abs_difference": float((vec - loop.to(vec.dtype)).abs().max()) if n else 0.0,
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "solo.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    args = parser(__doc__).parse_args()
    emit(main(args.out, quick=args.quick or None))
