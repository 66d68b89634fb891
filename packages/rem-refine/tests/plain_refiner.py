"""A plain, per-instance implementation of refine.md §1.3-1.5, written for clarity, not speed.

It mirrors how the reference loops (one annotation at a time, its T trials as one decoder
batch, segment-anything's own ``MaskDecoder.forward`` on a single image embedding) and shares
nothing with ``rem_refine.sam.batched`` except the random-number definition
(``rem_refine.draws``). The parity test and the speed benchmark compare the two.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_float64(sam):
    """``sam`` in float64. segment-anything casts prompt coordinates to float32 before its
    positional encoding; the patch keeps them in float64 so every op runs in double."""
    sam = sam.double()
    layer = sam.prompt_encoder.pe_layer
    encode = layer._pe_encoding
    layer._pe_encoding = lambda coords: encode(coords.to(torch.float64))
    return sam


def noisy_boxes(mask: np.ndarray, normals: np.ndarray, clamp: str) -> np.ndarray:
    """(T, 4) XYXY prompts: tight inclusive box of ``mask`` expanded by |N(0, sigma^2)| per side."""
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = (xs.min(), ys.min(), xs.max(), ys.max()) if xs.size else (0, 0, 0, 0)
    h, w = mask.shape
    boxes = []
    for z in normals:
        sx = min(0.1 * (x2 - x1), 10.0)
        sy = min(0.1 * (y2 - y1), 10.0)
        box = [x1 - abs(z[0]) * sx, y1 - abs(z[1]) * sy, x2 + abs(z[2]) * sx, y2 + abs(z[3]) * sy]
        xmax, ymax = (1023.0, 1023.0) if clamp == "canvas" else (w - 1.0, h - 1.0)
        box = [
            min(max(box[0], 0), xmax),
            min(max(box[1], 0), ymax),
            min(max(box[2], 0), xmax),
            min(max(box[3], 0), ymax),
        ]
        boxes.append(box)
    return np.array(boxes, dtype=np.float64)


@torch.inference_mode()
def refine_instance(
    sam,
    embedding: torch.Tensor,
    source: np.ndarray,
    boxes: np.ndarray,
    uniforms: np.ndarray,
    original: tuple[int, int],
    fallback_scope: str = "trial",
    stats: dict | None = None,
) -> np.ndarray:
    """The (H, W) bool vote of T trials for one instance; ``embedding`` is (1, C, 64, 64).

    ``stats``, if given, counts rounds where all / some (not all) trials came out empty.
    """
    t_count = boxes.shape[0]
    rounds = uniforms.shape[1] + 1
    h2, w2 = source.shape
    dtype = next(sam.mask_decoder.parameters()).dtype
    device = embedding.device
    g = torch.from_numpy(source).to(device)
    box_prompt = torch.from_numpy(boxes).to(device, dtype)
    points = [[] for _ in range(t_count)]
    labels = [[] for _ in range(t_count)]
    mask_prompt = None
    for k in range(rounds):
        point_prompt = None
        if k:
            point_prompt = (
                torch.tensor(points, dtype=dtype, device=device),
                torch.tensor(labels, dtype=torch.long, device=device),
            )
        sparse, dense = sam.prompt_encoder(points=point_prompt, boxes=box_prompt, masks=mask_prompt)
        low_res, _ = sam.mask_decoder(
            image_embeddings=embedding,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        up = F.interpolate(low_res, (1024, 1024), mode="bilinear", align_corners=False)
        out = up[:, 0, :h2, :w2].clone()
        empty = [not (out[t] > 0).any() for t in range(t_count)]
        if stats is not None:
            key = "all_empty" if all(empty) else "some_empty" if any(empty) else "none_empty"
            stats[key] = stats.get(key, 0) + 1
        if fallback_scope == "instance":
            if all(empty):
                out[:] = g.to(dtype)
        else:
            for t in range(t_count):
                if empty[t]:
                    out[t] = g.to(dtype)
        mask_prompt = low_res
        if k == rounds - 1:
            break
        for t in range(t_count):
            error = source ^ (out[t] > 0).cpu().numpy()
            pool = error if error.any() else source
            flat = np.flatnonzero(pool)
            if flat.size == 0:
                x, y = 0, 0
            else:
                rank = min(int(np.floor(uniforms[t, k] * flat.size)), flat.size - 1)
                y, x = divmod(int(flat[rank]), w2)
            points[t].append([x, y])
            labels[t].append(int(source[y, x]))
    full = F.interpolate(out[:, None], original, mode="bilinear", align_corners=False)
    votes = (full[:, 0] > 0).sum(0)
    return (votes * 2 > t_count).cpu().numpy()
