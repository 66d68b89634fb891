"""The batched SAM path against a plain per-instance implementation of the spec.

With a small random SAM and fixed seeds, every instance's mask from the batched path (units of
several images and instances per decoder call, instances split across calls) must equal the
mask of ``plain_refiner.refine_instance``, which runs segment-anything's own decoder on one
instance's T trials at a time, like the reference.

Both run in float64. In float32 the CPU kernels round a few logits differently depending on how
many rows share a call (a 1x1 convolution of the mask prompt, for one), and with random weights
the logits hover near zero, so one flipped pixel moves a sampled point and the trials diverge;
float64 removes that noise so that equality tests the algorithm, not the rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plain_refiner import noisy_boxes as plain_boxes
from plain_refiner import refine_instance, to_float64

from rem_core.io import load_coco
from rem_refine.backends import ImageTask
from rem_refine.images import read_rgb
from rem_refine.sam.backend import SamSettings, prepare_jobs
from rem_refine.sam.batched import BatchedSamRefiner, BatchOptions, pick_points, row_counts
from rem_refine.sam.models import build_tiny_test


def _float64_sam(logit_offset: float = 0.0):
    """The tiny random SAM in float64; ``logit_offset`` shifts every mask logit by a constant.

    The offset is built into the weights (one upscaling channel set
    to a constant, its hypernetwork weight to the offset) so both paths see the same model.
    """
    torch.manual_seed(1)
    sam = to_float64(build_tiny_test().eval())
    if logit_offset:
        conv = sam.mask_decoder.output_upscaling[3]
        last = sam.mask_decoder.output_hypernetworks_mlps[0].layers[-1]
        with torch.no_grad():
            conv.weight[:, 0] = 0.0
            conv.bias[0] = 5.0  # GELU(5) ~ 5: channel 0 becomes a constant map
            last.weight[0] = 0.0
            last.bias[0] = logit_offset / float(torch.nn.functional.gelu(torch.tensor(5.0)))
    return sam


def _tasks(samples, per_image: int):
    """The first image with annotations of each sample, with its first ``per_image`` ones; the
    first annotation of the last image is made box-only."""
    tasks = []
    for sample in samples:
        coco = load_coco(sample.coarse)
        for image in coco.images:
            anns = [a for a in coco.img_to_anns[image["id"]] if not a.get("iscrowd")][:per_image]
            if anns:
                box_only = [sample is samples[-1] and i == 0 for i in range(len(anns))]
                tasks.append(
                    (sample, ImageTask(image["id"], image, list(enumerate(anns)), box_only))
                )
                break
    return tasks


@pytest.mark.parametrize(("scope", "clamp"), [("trial", "image"), ("instance", "canvas")])
def test_batched_equals_plain_per_instance(synth_sample, portrait_sample, scope, clamp):
    # The offset makes some trials come out empty, so the fallback rule is exercised too.
    sam = _float64_sam(-0.13)
    settings = SamSettings(
        num_trials=3, num_extra_points=2, seed=5, box_clamp=clamp, fallback_scope=scope
    )
    # A landscape and a portrait image: calls mix units whose canvases are cropped differently.
    pairs = _tasks([synth_sample, portrait_sample], per_image=2)
    tasks = [task for _, task in pairs]
    prepared = []
    for sample, task in pairs:
        pixels = read_rgb(sample.image_dir / task.record["file_name"], None)
        prepared.append(prepare_jobs(task, pixels, settings))
    assert prepared[0].payload.shape != prepared[1].payload.shape
    jobs, owners = [], []
    for slot, p in enumerate(prepared):
        for index, job in zip(p.job_indices, p.jobs):
            job.image_slot = slot
            jobs.append(job)
            owners.append((tasks[slot], index))
    assert len(jobs) == 4 and any(j.rounds == 1 for j in jobs) and any(j.rounds == 3 for j in jobs)
    # 9 units per call: 3 instances of 3 trials, so calls mix the two images and split them.
    refiner = BatchedSamRefiner(sam, "cpu", BatchOptions(3, scope, decoder_units=9))
    embeddings = refiner.encode([p.payload for p in prepared])
    batched = refiner.refine(embeddings, jobs)

    from rem_refine.draws import trial_draws

    stats: dict[str, int] = {}
    for job, got, (task, index) in zip(jobs, batched, owners):
        ann = dict(task.anns)[index]
        draws = trial_draws(5, task.image_id, ann["id"], 3, job.uniforms.shape[1])
        boxes = plain_boxes(job.source, draws.normals, clamp)
        np.testing.assert_array_equal(boxes, job.boxes)
        want = refine_instance(
            sam,
            embeddings[job.image_slot : job.image_slot + 1],
            job.source,
            boxes,
            draws.uniforms,
            job.original,
            scope,
            stats,
        )
        assert got.shape == job.original
        assert np.array_equal(got, want), f"instance {ann['id']}: {(got != want).sum()} pixels"
    areas = [int(m.sum()) for m in batched]
    assert len(set(areas)) > 1 and max(areas) > 0  # not a degenerate all-equal output
    # Rounds with no, some and all trials empty all occurred: every fallback branch ran.
    assert stats.get("none_empty", 0) and stats.get("some_empty", 0) and stats.get("all_empty", 0)


def test_pick_points_against_flatnonzero():
    rng = np.random.default_rng(0)
    b, h, w = 40, 12, 16
    err = torch.from_numpy(rng.random((b, h, w)) < 0.05)
    source = torch.from_numpy(rng.random((b, h, w)) < 0.3)
    err[:5] = False  # empty error region: pick from G
    err[5:8] = False
    source[5:8] = False  # G empty too: (0, 0)
    uniforms = torch.from_numpy(rng.random(b))
    uniforms[8] = np.nextafter(1.0, 0.0)  # rank must stay below n
    xy, labels = pick_points(err, row_counts(err), source, row_counts(source), uniforms)
    for i in range(b):
        pool = err[i].numpy() if err[i].any() else source[i].numpy()
        flat = np.flatnonzero(pool)
        if flat.size == 0:
            y, x = 0, 0
        else:
            y, x = divmod(int(flat[min(int(np.floor(uniforms[i] * flat.size)), flat.size - 1)]), w)
        assert xy[i].tolist() == [x, y]
        assert labels[i].item() == int(source[i, y, x])
    counts = row_counts(torch.from_numpy(rng.random((3, 5, 24)) < 0.5))
    assert counts.dtype == torch.int32 and counts.shape == (3, 5)
