"""The SAM refinement of refine.md §1.5, batched over every instance and trial of many images.

The reference loops over annotations and runs T trials of one annotation per decoder call. Here
a *unit* is one (instance, trial); the units of all instances of an encoder batch of images go
through the prompt encoder and mask decoder together, round by round, in chunks of whole
instances (so the per-instance empty-output test of the reference can be evaluated inside a
chunk). Each unit reads its own image embedding, so units of different images share a chunk.

Frames: masks live on the 1024 x 1024 canvas (resized image top-left, zeros elsewhere). Points
are (x, y) canvas pixels, boxes XYXY canvas pixels, low-res logits (1, 256, 256).

What the batching must not change, and the tests check against a per-instance loop:

* round 1 prompts with the box only; round k > 1 adds the k-1 points so far and the previous
  round's raw low-res logits as the mask prompt; ``multimask_output=False``;
* logits are upsampled bilinearly to 1024 x 1024 and cropped to (h', w') before any test;
* empty output (no positive logit in the crop) is replaced by the source mask G, decided per
  trial (``fallback_scope="trial"``, refine.md §5 #7) or, as the reference did, jointly over the
  instance's trials (``"instance"``);
* the next point is the pixel of rank floor(u * n) in row-major order among the n pixels of the
  error region G xor (logits > 0), or of G when that region is empty, or (0, 0) when G is empty;
  its label is G at that pixel;
* the vote resizes the last round's per-trial maps to (H, W) bilinearly, thresholds at > 0 and
  keeps pixels with more than half of the T votes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, Sam

CANVAS = 1024
LOW_RES = 256

FallbackScope = Literal["trial", "instance"]
Precision = Literal["fp32", "bf16"]


@dataclass
class InstanceJob:
    """One annotation to refine, prepared on the CPU.

    ``image_slot``: index of its image in the encoder batch. ``source``: (h', w') bool mask G.
    ``boxes``: (T, 4) float64 XYXY box prompts, noise and clamp applied. ``uniforms``: (T, P)
    float64 in [0, 1) for the P point rounds. ``original``: (H, W) of the image.
    """

    image_slot: int
    source: np.ndarray
    boxes: np.ndarray
    uniforms: np.ndarray
    original: tuple[int, int]

    @property
    def rounds(self) -> int:
        return self.uniforms.shape[1] + 1

    @property
    def resized(self) -> tuple[int, int]:
        return self.source.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class BatchOptions:
    """How the batched path runs; none of these change the masks except as documented.

    ``decoder_units``: (instance, trial) units per decoder call (whole instances per chunk).
    ``vote_elements``: bound on T*H*W floats held at once while voting at full resolution.
    ``precision``: ``"bf16"`` runs the encoder and decoder under CUDA bf16 autocast, which can
    move logits near 0 and so flip pixels; ``"fp32"`` does not.
    """

    num_trials: int = 10
    fallback_scope: FallbackScope = "trial"
    decoder_units: int = 256
    vote_elements: int = 1 << 26
    precision: Precision = "fp32"


def decode_units(
    decoder: MaskDecoder,
    embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> torch.Tensor:
    """SAM's mask decoder with one image embedding per unit; returns (B, 1, 256, 256) logits.

    segment-anything's ``MaskDecoder`` repeats a single image embedding for every prompt; this
    runs the same layers in the same order on (B, C, 64, 64) per-unit embeddings, so units from
    several images can share a call. Like ``multimask_output=False`` it returns mask 0.
    """
    tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse], dim=1)
    src = embeddings + dense
    pos = image_pe.expand(src.shape[0], -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos, tokens)
    mask_tokens = hs[:, 1 : 1 + decoder.num_mask_tokens, :]
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = torch.stack(
        [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
        dim=1,
    )
    b, c, h, w = upscaled.shape
    masks = (hyper @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    return masks[:, :1]


def upsample_logits(low_res: torch.Tensor) -> torch.Tensor:
    """(B, 1, 256, 256) low-res logits -> (B, 1, 1024, 1024), bilinear, align_corners=False."""
    return F.interpolate(low_res, (CANVAS, CANVAS), mode="bilinear", align_corners=False)


def row_counts(mask: torch.Tensor) -> torch.Tensor:
    """(B, H) int32 number of true pixels per row of a (B, H, W) bool mask, W a multiple of 8.

    Summing bytes in groups of 8 first keeps the reduction in uint8, several times faster on a
    CPU than letting torch widen every pixel to int64.
    """
    b, h, w = mask.shape
    groups = mask.view(torch.uint8).reshape(b, h, w // 8, 8).sum(3, dtype=torch.uint8)
    return groups.sum(2, dtype=torch.int32)


def pick_points(
    err: torch.Tensor,
    err_rows: torch.Tensor,
    source: torch.Tensor,
    source_rows: torch.Tensor,
    uniforms: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One point per unit: the pixel of rank floor(u * n) among n candidate pixels (row-major).

    ``err`` (B, H, W) bool error regions with row counts ``err_rows`` (B, H); ``source`` (B, H, W)
    bool G (may be a broadcast view) with row counts ``source_rows``; ``uniforms`` (B,) float64.
    A unit whose error region is empty picks from G, and from (0, 0) when G is empty too.
    Returns (B, 2) int64 (x, y) and (B,) int64 labels G[y, x].
    """
    use_source = err_rows.sum(1) == 0
    rows = torch.where(use_source[:, None], source_rows, err_rows).long()
    n = rows.sum(1)
    rank = torch.floor(uniforms.to(torch.float64) * n.to(torch.float64)).long()
    rank = torch.minimum(rank, (n - 1).clamp(min=0))
    # Find the row first, then the column inside it: two cumulative sums of length H and W.
    row_cum = rows.cumsum(1)
    row = torch.searchsorted(row_cum, (rank + 1)[:, None]).squeeze(1).clamp(max=rows.shape[1] - 1)
    before = torch.where(row > 0, row_cum.gather(1, (row - 1).clamp(min=0)[:, None]).squeeze(1), 0)
    units = torch.arange(err.shape[0], device=err.device)
    line = torch.where(use_source[:, None], source[units, row], err[units, row])
    col = torch.searchsorted(line.cumsum(1), (rank - before + 1)[:, None]).squeeze(1)
    col = col.clamp(max=err.shape[2] - 1)
    empty = n == 0
    x = torch.where(empty, 0, col)
    y = torch.where(empty, 0, row)
    labels = source[units, y, x].long()
    return torch.stack([x, y], dim=1), labels


class BatchedSamRefiner:
    """Set images once, refine many instances: the stateful session around a stateless ``Sam``."""

    def __init__(self, sam: Sam, device: torch.device | str, options: BatchOptions) -> None:
        self.sam = sam.to(device).eval()
        self.device = torch.device(device)
        self.options = options
        # float32 normally; tests run the model in float64 to compare paths bit for bit.
        self.dtype = next(self.sam.mask_decoder.parameters()).dtype
        if options.precision == "bf16" and self.device.type != "cuda":
            raise ValueError("bf16 precision needs a CUDA device")

    def _autocast(self):
        if self.options.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    @torch.inference_mode()
    def encode(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Image embeddings (B, C, 64, 64) of resized (h', w', 3) uint8 RGB images."""
        batch = []
        for image in images:
            x = torch.tensor(image, dtype=torch.uint8).to(self.device, non_blocking=True)
            batch.append(self.sam.preprocess(x.permute(2, 0, 1).to(self.dtype)))
        with self._autocast():
            return self.sam.image_encoder(torch.stack(batch)).to(self.dtype)

    @torch.inference_mode()
    def refine(self, embeddings: torch.Tensor, jobs: Sequence[InstanceJob]) -> list[np.ndarray]:
        """Ensembled (H, W) bool masks, one per job, before small-region cleanup."""
        if not jobs:
            return []
        state = _UnitState(jobs, self.options.num_trials, self.device, self.dtype)
        for k in range(max(job.rounds for job in jobs)):
            active = [i for i, job in enumerate(jobs) if job.rounds > k]
            for chunk in self._chunks(active):
                self._round(k, chunk, embeddings, state, jobs)
        return self._vote(jobs, state)

    def _chunks(self, job_ids: list[int]) -> Iterator[list[int]]:
        per_chunk = max(1, self.options.decoder_units // self.options.num_trials)
        for start in range(0, len(job_ids), per_chunk):
            yield job_ids[start : start + per_chunk]

    def _round(
        self,
        k: int,
        chunk: list[int],
        embeddings: torch.Tensor,
        state: _UnitState,
        jobs: Sequence[InstanceJob],
    ) -> None:
        t = self.options.num_trials
        units = state.units(chunk)
        job_of_unit = torch.as_tensor(chunk, device=self.device).repeat_interleave(t)
        pe = self.sam.prompt_encoder
        points = (state.points[units, :k], state.labels[units, :k]) if k else None
        masks = state.low_res[units] if k else None
        with self._autocast():
            sparse, dense = pe(points=points, boxes=state.boxes[units], masks=masks)
            logits = decode_units(
                self.sam.mask_decoder,
                embeddings[state.slot[job_of_unit]],
                pe.get_dense_pe(),
                sparse,
                dense,
            )
        logits = logits.to(self.dtype)
        state.low_res[units] = logits
        n = len(chunk)
        h2 = max(jobs[i].resized[0] for i in chunk)
        w2 = max(jobs[i].resized[1] for i in chunk)
        width = min(CANVAS, -(-w2 // 8) * 8)  # row_counts wants a multiple of 8
        positive = upsample_logits(logits)[:, 0, :h2, :width] > 0
        if width > w2:
            positive[..., w2:] = False
        if any(jobs[i].resized != (h2, w2) for i in chunk):
            positive &= state.valid(job_of_unit, h2, width)
        has_output = positive.flatten(1).any(1)
        if self.options.fallback_scope == "instance":
            has_output = has_output.view(n, t).any(1).repeat_interleave(t)
        fallback = ~has_output
        state.fallback[units] = fallback
        if not any(jobs[i].rounds > k + 1 for i in chunk):
            return  # the point drawn after a last round is never used
        ids = torch.as_tensor(chunk, device=self.device)
        source = state.source[ids, :h2, :width]
        # A fallback unit's output is G itself, so its error region is empty.
        err = (positive.view(n, t, h2, width) ^ source[:, None]).view(n * t, h2, width)
        err_rows = row_counts(err)
        err_rows.masked_fill_(fallback[:, None], 0)  # (no host sync, unlike bool indexing)
        xy, labels = pick_points(
            err,
            err_rows,
            source[:, None].expand(n, t, h2, width).reshape(n * t, h2, width),
            state.source_rows[ids, :h2].repeat_interleave(t, dim=0),
            state.uniforms[units, k],
        )
        state.points[units, k] = xy.to(state.points.dtype)
        state.labels[units, k] = labels

    def _vote(self, jobs: Sequence[InstanceJob], state: _UnitState) -> list[np.ndarray]:
        t = self.options.num_trials
        results: list[np.ndarray] = []
        start = 0
        while start < len(jobs):
            # Jobs of one image share (H, W) and (h', w'); vote them together within a budget.
            h, w = jobs[start].original
            h2, w2 = jobs[start].resized
            per_chunk = max(1, self.options.vote_elements // (t * h * w))
            stop = start + 1
            while (
                stop < len(jobs)
                and stop - start < per_chunk
                and jobs[stop].original == (h, w)
                and jobs[stop].resized == (h2, w2)
            ):
                stop += 1
            chunk = list(range(start, stop))
            units = state.units(chunk)
            maps = upsample_logits(state.low_res[units])[..., :h2, :w2]
            flagged = state.fallback[units].nonzero().squeeze(1)
            if flagged.numel():
                jobs_flagged = torch.as_tensor(chunk, device=self.device)[flagged // t]
                maps[flagged, 0] = state.source[jobs_flagged, :h2, :w2].to(maps.dtype)
            full = F.interpolate(maps, (h, w), mode="bilinear", align_corners=False)
            vote_type = torch.uint8 if t < 256 else torch.int32
            votes = (full[:, 0] > 0).view(len(chunk), t, h, w).sum(1, dtype=vote_type)
            masks = (votes > t // 2).cpu().numpy()  # strictly more than half of the T votes
            results.extend(masks)
            start = stop
        return results


class _UnitState:
    """Per-unit tensors of one ``refine`` call, unit u = job * T + trial."""

    def __init__(
        self, jobs: Sequence[InstanceJob], t: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        n = len(jobs)
        self.t = t
        self.device = device
        max_points = max(job.uniforms.shape[1] for job in jobs)
        source = torch.zeros((n, CANVAS, CANVAS), dtype=torch.bool)
        sizes = torch.zeros((n, 2), dtype=torch.long)
        uniforms = torch.zeros((n * t, max(max_points, 1)), dtype=torch.float64)
        for i, job in enumerate(jobs):
            h2, w2 = job.resized
            source[i, :h2, :w2] = torch.from_numpy(job.source)
            sizes[i] = torch.tensor([h2, w2])
            uniforms[i * t : (i + 1) * t, : job.uniforms.shape[1]] = torch.from_numpy(job.uniforms)
        boxes = np.concatenate([job.boxes for job in jobs])
        self.source = source.to(device)
        self.source_rows = row_counts(self.source)
        self.sizes = sizes.to(device)
        self.uniforms = uniforms.to(device)
        self.boxes = torch.from_numpy(boxes).to(device, dtype)
        self.slot = torch.as_tensor([job.image_slot for job in jobs], device=device)
        self.low_res = torch.zeros((n * t, 1, LOW_RES, LOW_RES), device=device, dtype=dtype)
        self.fallback = torch.zeros(n * t, dtype=torch.bool, device=device)
        self.points = torch.zeros((n * t, max(max_points, 1), 2), device=device, dtype=dtype)
        self.labels = torch.zeros((n * t, max(max_points, 1)), dtype=torch.long, device=device)
        self._lines = torch.arange(CANVAS, device=device)

    def units(self, job_ids: list[int]) -> torch.Tensor:
        ids = torch.as_tensor(job_ids, device=self.device)
        return (ids[:, None] * self.t + torch.arange(self.t, device=self.device)).flatten()

    def valid(self, job_of_unit: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, height, width) bool: which canvas pixels lie in each unit's resized image."""
        h = self.sizes[job_of_unit, 0]
        w = self.sizes[job_of_unit, 1]
        rows = self._lines[None, :height, None] < h[:, None, None]
        cols = self._lines[None, None, :width] < w[:, None, None]
        return rows & cols
