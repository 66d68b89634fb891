"""The SAM stage-1 backend: CPU preparation per image, one batched accelerator call per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from segment_anything.modeling import Sam

from rem_refine.backends import AnnResult, ImageTask, PreparedImage
from rem_refine.draws import trial_draws
from rem_refine.preprocess import (
    CANVAS,
    SourceMaskError,
    noisy_boxes,
    resize_image,
    resized_shape,
    resized_source_mask,
    tight_box,
)
from rem_refine.sam.batched import BatchedSamRefiner, BatchOptions, InstanceJob

BoxClamp = Literal["image", "canvas"]


@dataclass(frozen=True)
class SamSettings:
    """The algorithm's parameters (refine.md §1.1, §1.5) and the fixes that change results.

    ``box_clamp``: ``"image"`` clamps boxes to the resized image (§5 #8), ``"canvas"`` to the
    1024 canvas as the reference did. ``fallback_scope``: see :mod:`rem_refine.sam.batched`.
    """

    num_trials: int = 10
    num_extra_points: int = 2
    seed: int = 0
    box_clamp: BoxClamp = "image"
    fallback_scope: Literal["trial", "instance"] = "trial"


def prepare_jobs(task: ImageTask, pixels: np.ndarray, settings: SamSettings) -> PreparedImage:
    """Resize the image and build one :class:`InstanceJob` per refinable annotation."""
    h, w = pixels.shape[:2]
    shape = resized_shape(h, w)
    h2, w2 = shape
    prepared = PreparedImage(task, payload=resize_image(pixels, shape))
    limits = (
        (CANVAS - 1.0, CANVAS - 1.0) if settings.box_clamp == "canvas" else (w2 - 1.0, h2 - 1.0)
    )
    for (index, ann), box_only in zip(task.anns, task.box_only):
        try:
            source = resized_source_mask(ann.get("segmentation"), h, w, shape)
        except SourceMaskError as exc:
            prepared.early.append(AnnResult(index, "skipped", str(exc)))
            continue
        if not source.any():
            # Nothing to prompt with; the reference would prompt a (0, 0, 0, 0) box.
            prepared.early.append(AnnResult(index, "skipped", "source mask empty at 1024 scale"))
            continue
        points = 0 if box_only else settings.num_extra_points
        draws = trial_draws(
            settings.seed, task.image_id, ann.get("id"), settings.num_trials, points
        )
        boxes = noisy_boxes(tight_box(source), draws.normals, limits)
        prepared.job_indices.append(index)
        prepared.jobs.append(InstanceJob(0, source, boxes, draws.uniforms, (h, w)))
    return prepared


class SamBackend:
    """Stage 1 with a SAM model; ``run`` encodes a batch of images once and decodes in bulk."""

    name = "sam"

    def __init__(
        self,
        sam: Sam,
        device: torch.device | str,
        settings: SamSettings,
        options: BatchOptions,
    ) -> None:
        self.settings = settings
        self.refiner = BatchedSamRefiner(sam, device, options)

    def prepare(self, task: ImageTask, pixels: np.ndarray) -> PreparedImage:
        return prepare_jobs(task, pixels, self.settings)

    def run(self, batch: list[PreparedImage]) -> list[list[np.ndarray | None]]:
        # Images whose annotations all failed preparation need no encoding at all.
        with_jobs = [p for p in batch if p.jobs]
        jobs: list[InstanceJob] = []
        for slot, prepared in enumerate(with_jobs):
            for job in prepared.jobs:
                job.image_slot = slot
                jobs.append(job)
        masks: list[np.ndarray] = []
        if with_jobs:
            embeddings = self.refiner.encode([p.payload for p in with_jobs])
            masks = self.refiner.refine(embeddings, jobs)
        out: list[list[np.ndarray | None]] = []
        it = iter(masks)
        for prepared in batch:
            out.append([next(it) for _ in prepared.jobs])
        return out
