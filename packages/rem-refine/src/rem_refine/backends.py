"""What a stage-1 backend does with one image, and the weight-free GrabCut backend.

The runner hands a backend the images of one batch in two steps:

* ``prepare(task, pixels)`` runs in loader threads (CPU): resize, rasterise source masks, draw
  the random numbers, anything that does not need the model;
* ``run(batch)`` runs in the main thread (the accelerator): one call per batch of images,
  returning one refined (H, W) bool mask, or None for "keep the source", per prepared job.

Annotations a backend cannot process (bad segmentation, empty source) are reported in
``PreparedImage.early`` and never reach ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from rem_refine.grabcut import GrabCutOptions, grabcut_refine
from rem_refine.preprocess import SourceMaskError, source_mask


@dataclass
class AnnResult:
    """The outcome for one input annotation (``index`` in the input's annotation list).

    ``outcome`` is an accounting outcome (``refined``, ``kept_fallback``, ``skipped``);
    ``fields`` holds the new ``segmentation``/``area``/``bbox`` when refined.
    """

    index: int
    outcome: str
    reason: str | None = None
    fields: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "outcome": self.outcome}
        if self.reason:
            out["reason"] = self.reason
        if self.fields is not None:
            out["fields"] = self.fields
        return out


@dataclass
class ImageTask:
    """One image to visit: its record and the (input index, annotation) pairs to refine."""

    image_id: Any
    record: dict[str, Any]
    anns: list[tuple[int, dict[str, Any]]]
    box_only: list[bool]


@dataclass
class PreparedImage:
    """A task after the CPU step: ``jobs`` (backend-specific), their annotation indices, and
    the annotations already decided (``early``)."""

    task: ImageTask
    job_indices: list[int] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    early: list[AnnResult] = field(default_factory=list)
    payload: Any = None


class Backend(Protocol):
    name: str

    def prepare(self, task: ImageTask, pixels: np.ndarray) -> PreparedImage: ...

    def run(self, batch: list[PreparedImage]) -> list[list[np.ndarray | None]]: ...


class GrabCutBackend:
    """Weight-free refinement with OpenCV GrabCut (see :mod:`rem_refine.grabcut`); CPU only.

    All the work happens in ``prepare``, i.e. in parallel loader threads.
    """

    name = "grabcut"

    def __init__(self, seed: int, options: GrabCutOptions | None = None) -> None:
        self.seed = seed
        self.options = options or GrabCutOptions()

    def prepare(self, task: ImageTask, pixels: np.ndarray) -> PreparedImage:
        prepared = PreparedImage(task)
        h, w = pixels.shape[:2]
        bgr = np.ascontiguousarray(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        for index, ann in task.anns:
            try:
                source = source_mask(ann.get("segmentation"), h, w)
            except SourceMaskError as exc:
                prepared.early.append(AnnResult(index, "skipped", str(exc)))
                continue
            if not source.any():
                prepared.early.append(AnnResult(index, "skipped", "empty source mask"))
                continue
            refined = grabcut_refine(
                bgr, source, self.options, self.seed, task.image_id, ann.get("id")
            )
            prepared.job_indices.append(index)
            prepared.jobs.append(refined)
        return prepared

    def run(self, batch: list[PreparedImage]) -> list[list[np.ndarray | None]]:
        return [list(p.jobs) for p in batch]
