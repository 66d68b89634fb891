"""Stage 1 of COCO-ReM, ``rem refine``: replace every non-crowd mask by its SAM refinement.

The run, in one or several processes:

1. read the input (COCO or LVIS) and group annotations by image in order of first appearance;
   crowd annotations and unselected categories are decided here and never reach a model, and an
   image whose annotations are all decided is never read or encoded (refine.md §5 #2);
2. cut the images to visit into batches of ``image_batch``; rank r of W takes batches r, r+W,
   ... so a batch is always encoded together, whatever W is;
3. per batch: loader threads read and prepare the images while the model works on the previous
   batch; finisher threads clean up masks and encode RLE; the batch's results are appended to
   the rank's part file (:mod:`rem_refine.partial`) as soon as they are complete;
4. rank 0 merges all part files, rewrites the annotations **in input order** (§5 #5), checks the
   accounting, and writes the output JSON atomically, then the manifest and accounting files.

Because every random number is a function of (seed, image, annotation, trial) and a batch's
composition does not depend on W, the output bytes are the same for any number of processes and
after any number of crash-and-resume cycles.
"""

from __future__ import annotations

import hashlib
import platform
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rem_core.atomic import atomic_write_bytes
from rem_core.errors import RemError
from rem_core.io import CocoFile, dumps_json, iscrowd, parse_json
from rem_refine.accounting import Accounting, accounting_path
from rem_refine.backends import AnnResult, Backend, ImageTask, PreparedImage
from rem_refine.box_only import DEFAULT_BOX_ONLY_NAMES, resolve_box_only
from rem_refine.distributed import DistContext
from rem_refine.images import ExifMode, ImageProblem, find_image, read_rgb
from rem_refine.partial import BatchWriter, PartialResults
from rem_refine.records import clean_small_regions, mask_fields

BackendName = Literal["sam", "grabcut"]
OnEmpty = Literal["source", "write-empty"]


@dataclass(frozen=True)
class RefineConfig:
    """Everything ``rem refine`` can be told. Defaults are the reference's where it had one.

    Result-changing fixes of the reference (refine.md §5) and their reference values:
    ``fallback_scope`` "trial" (reference "instance", #7), ``box_clamp`` "image" (reference
    "canvas", #8), ``on_empty`` "source" (reference "write-empty": an empty mask with bbox
    [0, 0, 1, 1], #9).
    """

    input_json: Path
    output: Path
    image_dirs: tuple[Path, ...] = (Path("datasets/coco/val2017"),)
    backend: BackendName = "sam"
    arch: str = "vit_h"
    checkpoint: Path | None = None
    num_trials: int = 10
    num_extra_points: int = 2
    min_mask_region_area: int = 100
    box_only_names: tuple[str, ...] = DEFAULT_BOX_ONLY_NAMES
    box_only_ids: tuple[int, ...] = ()
    category_ids: tuple[int, ...] | None = None
    coco_mapped_only: bool = False
    seed: int = 0
    fallback_scope: Literal["trial", "instance"] = "trial"
    box_clamp: Literal["image", "canvas"] = "image"
    on_empty: OnEmpty = "source"
    exif: ExifMode = "auto"
    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    image_batch: int = 1
    decoder_units: int = 256
    workers: int = 4
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.num_trials < 1:
            raise RemError(f"--num-trials must be at least 1, got {self.num_trials}")
        if self.num_extra_points < 0:
            raise RemError(f"--num-extra-points must be >= 0, got {self.num_extra_points}")
        if self.image_batch < 1 or self.decoder_units < 1 or self.workers < 1:
            raise RemError("--image-batch, --decoder-units and --workers must be positive")


@dataclass
class Plan:
    """What the input asks for: decided outcomes and the images to visit, in input order."""

    annotations: list[dict[str, Any]]
    decided: dict[int, AnnResult]
    tasks: list[ImageTask]
    box_only_ids: list[int]
    unknown_box_only: list[str]
    images_with_annotations: int


@dataclass
class RefineSummary:
    """What a finished run did (rank 0 has the merged view; other ranks only ``processed``)."""

    output: Path
    processed_images: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    image_problems: dict[str, int] = field(default_factory=dict)
    manifest: Path | None = None


# --------------------------------------------------------------------------------------------
# planning


def build_plan(coco: CocoFile, config: RefineConfig) -> Plan:
    """Decide crowd / unselected / orphan annotations and list the images to visit."""
    path = coco.path
    images = coco.imgs
    box_only_ids, unknown = resolve_box_only(
        coco.categories, config.box_only_names, config.box_only_ids
    )
    selected: set[int] | None = None
    if config.category_ids is not None:
        selected = set(config.category_ids)
    if config.coco_mapped_only:
        from rem_refine.lvis_map import LVIS_TO_COCO

        selected = set(LVIS_TO_COCO) if selected is None else selected & set(LVIS_TO_COCO)
    decided: dict[int, AnnResult] = {}
    groups: dict[Any, list[tuple[int, dict]]] = {}
    for index, ann in enumerate(coco.annotations):
        if not isinstance(ann, dict) or "category_id" not in ann or "image_id" not in ann:
            raise RemError(
                "annotation needs image_id and category_id",
                path=path,
                where=f"annotations[{index}]",
            )
        if iscrowd(ann):
            decided[index] = AnnResult(index, "kept_crowd", "crowd")
        elif ann["image_id"] not in images:
            decided[index] = AnnResult(index, "skipped", "image_id not in images")
        elif selected is not None and ann["category_id"] not in selected:
            decided[index] = AnnResult(index, "kept", "category not selected")
        else:
            groups.setdefault(ann["image_id"], []).append((index, ann))
    seen_images = {ann["image_id"] for ann in coco.annotations}
    tasks = [
        ImageTask(
            image_id,
            images[image_id],
            anns,
            [ann["category_id"] in box_only_ids for _, ann in anns],
        )
        for image_id, anns in groups.items()
    ]
    return Plan(
        list(coco.annotations), decided, tasks, sorted(box_only_ids), unknown, len(seen_images)
    )


def batches_of(tasks: Sequence[ImageTask], size: int) -> list[list[ImageTask]]:
    return [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]


# --------------------------------------------------------------------------------------------
# per-image work


@dataclass
class FailedImage:
    """An image that could not be read; all its annotations are kept unchanged."""

    task: ImageTask
    problem: ImageProblem


def load_and_prepare(
    task: ImageTask, backend: Backend, roots: Sequence[Path], exif: ExifMode
) -> PreparedImage | FailedImage:
    """Loader-thread step: find, decode, orient and check the image, then backend.prepare."""
    record = task.record
    expected = None
    if record.get("height") and record.get("width"):
        expected = (int(record["height"]), int(record["width"]))
    try:
        pixels = read_rgb(find_image(record, roots), expected, exif)
    except ImageProblem as problem:
        return FailedImage(task, problem)
    return backend.prepare(task, pixels)


def finish_image(
    prepared: PreparedImage | FailedImage,
    masks: list[np.ndarray | None],
    min_area: int,
    on_empty: OnEmpty,
) -> dict[str, Any]:
    """Finisher-thread step: small-region cleanup, empty fallback, RLE; one image's record."""
    if isinstance(prepared, FailedImage):
        kind = prepared.problem.kind
        return {
            "image_id": prepared.task.image_id,
            "problem": kind,
            "message": prepared.problem.message,
            "anns": [
                AnnResult(i, "skipped", f"image {kind}").to_json() for i, _ in prepared.task.anns
            ],
        }
    results = list(prepared.early)
    for index, mask in zip(prepared.job_indices, masks):
        if mask is None:
            results.append(AnnResult(index, "kept_fallback", "refiner gave no usable mask"))
            continue
        mask = clean_small_regions(mask, min_area)
        if not mask.any() and on_empty == "source":
            results.append(AnnResult(index, "kept_fallback", "empty refined mask"))
            continue
        results.append(AnnResult(index, "refined", None, mask_fields(mask)))
    results.sort(key=lambda r: r.index)
    return {"image_id": prepared.task.image_id, "anns": [r.to_json() for r in results]}


# --------------------------------------------------------------------------------------------
# the run


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "rem-refine",
        "rem-core",
        "torch",
        "segment-anything",
        "numpy",
        "opencv-python-headless",
        "pillow",
        "pycocotools",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _resolve_device(name: str, local_rank: int) -> str:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank % max(torch.cuda.device_count(), 1)}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RemError(f"--device {name}: CUDA is not available")
    return name


def resolve_checkpoint(config: RefineConfig) -> Path | None:
    """The checkpoint file to load, or None for the random-weight test architectures."""
    from rem_refine.sam.models import canonical_arch
    from rem_refine.weights import ARCH_WEIGHTS, WEIGHTS, find_checkpoint

    arch = canonical_arch(config.arch)
    if config.checkpoint is not None:
        if not Path(config.checkpoint).is_file():
            raise RemError("checkpoint file not found", path=config.checkpoint)
        return Path(config.checkpoint)
    found = find_checkpoint(arch)
    if found is not None:
        return found
    if arch in ARCH_WEIGHTS:
        # The reference's layout: checkpoints/<official file name> under the working directory.
        local = Path("checkpoints") / WEIGHTS[ARCH_WEIGHTS[arch]].filename
        if local.is_file():
            return local
    if arch.startswith("tiny"):
        return None
    hint = f"rem weights download {ARCH_WEIGHTS[arch]}" if arch in ARCH_WEIGHTS else ""
    raise RemError(
        f"no checkpoint for {arch}: pass --checkpoint PATH" + (f" or run `{hint}`" if hint else "")
    )


def _fingerprint(
    config: RefineConfig, input_sha: str, checkpoint_sha: str | None, plan: Plan, device: str
) -> dict[str, Any]:
    """What the results depend on; a resume must match it exactly."""
    return {
        "input_sha256": input_sha,
        "backend": config.backend,
        "arch": config.arch if config.backend == "sam" else None,
        "checkpoint_sha256": checkpoint_sha,
        "num_trials": config.num_trials,
        "num_extra_points": config.num_extra_points,
        "min_mask_region_area": config.min_mask_region_area,
        "box_only_category_ids": plan.box_only_ids,
        "category_ids": None if config.category_ids is None else sorted(config.category_ids),
        "coco_mapped_only": config.coco_mapped_only,
        "seed": config.seed,
        "fallback_scope": config.fallback_scope,
        "box_clamp": config.box_clamp,
        "on_empty": config.on_empty,
        "exif": config.exif,
        "device_type": device.split(":")[0],
        "precision": config.precision,
        "image_batch": config.image_batch,
        "decoder_units": config.decoder_units,
    }


def make_backend(
    config: RefineConfig, checkpoint: Path | None, device: str, sam: Any = None
) -> Backend:
    """The configured backend; ``sam`` injects an already built model (benchmarks, tests)."""
    if config.backend == "grabcut":
        from rem_refine.backends import GrabCutBackend

        return GrabCutBackend(config.seed)
    import torch

    from rem_refine.sam.backend import SamBackend, SamSettings
    from rem_refine.sam.batched import BatchOptions
    from rem_refine.sam.models import load_sam

    if sam is None:
        torch.manual_seed(0)  # random-weight test architectures must agree across processes
        sam = load_sam(config.arch, checkpoint)
    settings = SamSettings(
        num_trials=config.num_trials,
        num_extra_points=config.num_extra_points,
        seed=config.seed,
        box_clamp=config.box_clamp,
        fallback_scope=config.fallback_scope,
    )
    options = BatchOptions(
        num_trials=config.num_trials,
        fallback_scope=config.fallback_scope,
        decoder_units=config.decoder_units,
        precision=config.precision,
    )
    return SamBackend(sam, device, settings, options)


def run_refine(
    config: RefineConfig, console: Console | None = None, sam: Any = None
) -> RefineSummary:
    """Run stage 1 as configured; in a torchrun job every rank calls this.

    ``sam`` injects a built model instead of loading ``config.checkpoint`` (its weights are then
    not part of the manifest's checksum).
    """
    dist = DistContext.from_env()
    try:
        return _run(config, dist, console or Console(stderr=True), sam)
    finally:
        dist.close()


def _run(config: RefineConfig, dist: DistContext, console: Console, sam: Any) -> RefineSummary:
    quiet = dist.rank != 0
    try:
        raw = Path(config.input_json).read_bytes()
    except OSError as exc:
        raise RemError(f"cannot read: {exc.strerror}", path=config.input_json) from None
    input_sha = hashlib.sha256(raw).hexdigest()
    coco = CocoFile(parse_json(raw, config.input_json), config.input_json)
    del raw
    plan = build_plan(coco, config)
    if plan.unknown_box_only and not quiet:
        console.print(
            f"warning: box-only names matched no category: {', '.join(plan.unknown_box_only)}",
            highlight=False,
        )

    device = "cpu"
    checkpoint: Path | None = None
    checkpoint_sha: str | None = None
    if config.backend == "sam":
        checkpoint = resolve_checkpoint(config) if sam is None else None
        device = _resolve_device(config.device, dist.local_rank)
        if config.precision == "bf16" and not device.startswith("cuda"):
            raise RemError(f"--precision bf16 needs a CUDA device, not {device}")
        if checkpoint is not None and dist.rank == 0:
            from rem_core.download import file_digest

            checkpoint_sha = file_digest(checkpoint)
    fingerprint = _fingerprint(config, input_sha, checkpoint_sha, plan, device)
    store = PartialResults(Path(config.output))

    # Rank 0 alone decides whether to start or resume; the others follow its verdict.
    verdict = None
    if dist.rank == 0:
        try:
            if store.exists():
                if not config.resume:
                    raise RemError(
                        "an interrupted run left partial results here; pass --resume to continue "
                        "it, or delete the folder to start over",
                        path=store.dir,
                    )
                store.check(fingerprint)
            else:
                store.create(fingerprint)
        except RemError as exc:
            verdict = exc
    shared = dist.broadcast(None if verdict is None else verdict.format())
    if verdict is not None:
        raise verdict
    if shared is not None:
        raise RemError(shared)
    dist.barrier()

    batches = batches_of(plan.tasks, config.image_batch)
    done = store.done_batches()
    mine = [b for b in range(len(batches)) if b % dist.world == dist.rank and b not in done]
    processed = 0
    if mine:
        backend = make_backend(config, checkpoint, device, sam)
        with store.open_writer(dist.rank, dist.world) as writer:
            processed = _process(
                [(b, batches[b]) for b in mine], backend, config, writer, console, quiet
            )
    # Every rank reports what it wrote, so rank 0 can tell a non-shared filesystem from a bug.
    digests = dist.all_gather(_part_digest(store, dist.rank, dist.world))
    dist.barrier()
    summary = RefineSummary(Path(config.output), processed)
    if dist.rank == 0:
        _check_parts_visible(store, digests, dist.world)
        _merge(coco, plan, config, store, len(batches), fingerprint, checkpoint, summary, console)
    dist.barrier()
    return summary


def _part_digest(store: PartialResults, rank: int, world: int) -> tuple[str, str | None]:
    path = store.part_path(rank, world)
    if not path.is_file():
        return path.name, None
    return path.name, hashlib.sha256(path.read_bytes()).hexdigest()


def _check_parts_visible(
    store: PartialResults, digests: list[tuple[str, str | None]], world: int
) -> None:
    for rank, (name, digest) in enumerate(digests):
        if digest is None:
            continue
        path = store.dir / name
        seen = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        if seen != digest:
            raise RemError(
                f"rank {rank} of {world} wrote {name} but rank 0 does not see the same file; "
                "all machines must share the output folder's filesystem",
                path=store.dir,
            )


def _process(
    todo: list[tuple[int, list[ImageTask]]],
    backend: Backend,
    config: RefineConfig,
    writer: BatchWriter,
    console: Console,
    quiet: bool,
) -> int:
    """Run the batches ``todo`` with reading, compute and finishing overlapped."""
    roots = tuple(Path(p) for p in config.image_dirs)
    lookahead = 2
    total_images = sum(len(tasks) for _, tasks in todo)
    progress = Progress(
        TextColumn("refine"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not config.progress,
    )
    loads: deque[list[Future]] = deque()
    pending: deque[tuple[int, int, list[Future]]] = deque()
    done_images = 0
    with (
        progress,
        ThreadPoolExecutor(config.workers, thread_name_prefix="rem-load") as loader,
        ThreadPoolExecutor(2, thread_name_prefix="rem-finish") as finisher,
    ):
        task_id = progress.add_task("images", total=total_images)

        def submit(position: int) -> None:
            if position < len(todo):
                loads.append(
                    [
                        loader.submit(load_and_prepare, t, backend, roots, config.exif)
                        for t in todo[position][1]
                    ]
                )

        def flush(block: bool) -> None:
            nonlocal done_images
            while pending and (block or all(f.done() for f in pending[0][2])):
                batch, count, futures = pending.popleft()
                writer.write({"batch": batch, "images": [f.result() for f in futures]})
                done_images += count
                progress.update(task_id, completed=done_images)

        for position in range(min(lookahead, len(todo))):
            submit(position)
        for position, (batch, _) in enumerate(todo):
            prepared = [f.result() for f in loads.popleft()]
            submit(position + lookahead)
            ready = [p for p in prepared if isinstance(p, PreparedImage)]
            masks_iter = iter(backend.run(ready))
            futures = []
            for p in prepared:
                masks = [] if isinstance(p, FailedImage) else next(masks_iter)
                futures.append(
                    finisher.submit(
                        finish_image, p, masks, config.min_mask_region_area, config.on_empty
                    )
                )
            pending.append((batch, len(prepared), futures))
            flush(block=len(pending) > 2)
        flush(block=True)
    return done_images


def _merge(
    coco: CocoFile,
    plan: Plan,
    config: RefineConfig,
    store: PartialResults,
    num_batches: int,
    fingerprint: dict[str, Any],
    checkpoint: Path | None,
    summary: RefineSummary,
    console: Console,
) -> None:
    """Rank 0: rebuild the annotation list in input order and write output, manifest, ledger."""
    results: dict[int, dict[str, Any]] = {}
    problems: list[dict[str, Any]] = []
    seen: set[int] = set()
    for line in store.lines():
        if line["batch"] in seen:
            continue
        seen.add(line["batch"])
        for image in line["images"]:
            if "problem" in image:
                problems.append(
                    {k: image[k] for k in ("image_id", "problem", "message") if k in image}
                )
            for ann in image["anns"]:
                results[ann["index"]] = ann
    missing = sorted(set(range(num_batches)) - seen)
    if missing:
        raise RemError(
            f"{len(missing)} batches have no results (first: {missing[0]}); rerun with --resume",
            path=store.dir,
        )

    acc = Accounting("refine", categories=coco.categories)
    out_anns: list[dict[str, Any]] = []
    for index, ann in enumerate(plan.annotations):
        decided = plan.decided.get(index)
        result = decided.to_json() if decided is not None else results.get(index)
        if result is None:
            raise RemError(f"no result for annotations[{index}]", path=store.dir)
        if result["outcome"] == "refined":
            ann = {**ann, **result["fields"]}  # existing keys keep their place in the record
        acc.record(ann, result["outcome"], result.get("reason"))
        out_anns.append(ann)
    acc.check(plan.annotations, out_anns)
    problems.sort(key=lambda p: str(p["image_id"]))
    acc.extra["image_problems"] = problems

    out = dict(coco.dataset)
    out["annotations"] = out_anns
    data = dumps_json(out)
    output = Path(config.output)
    atomic_write_bytes(output, data)

    totals = acc.to_dict()["totals"]
    problem_counts = dict(sorted(Counter(p["problem"] for p in problems).items()))
    manifest = {
        "tool": "rem refine",
        "stage": 1,
        "versions": _versions(),
        "arguments": _arguments(config),
        "seed": config.seed,
        "fingerprint": fingerprint,
        "checkpoint": None
        if checkpoint is None
        else {"path": str(checkpoint), "sha256": fingerprint["checkpoint_sha256"]},
        "input": {"path": str(config.input_json), "sha256": fingerprint["input_sha256"]},
        "output": {"path": str(output), "sha256": hashlib.sha256(data).hexdigest()},
        "counts": {
            "annotations": totals,
            "images": {
                "in_file": len(coco.images),
                "with_annotations": plan.images_with_annotations,
                "visited": len(plan.tasks),
                "problems": problem_counts,
            },
        },
        "box_only": {"category_ids": plan.box_only_ids, "unknown_names": plan.unknown_box_only},
    }
    manifest_path = output.with_name(
        (output.name[:-5] if output.name.endswith(".json") else output.name) + ".manifest.json"
    )
    atomic_write_bytes(manifest_path, dumps_json(manifest, indent=True))
    acc.save(accounting_path(output))
    store.remove()
    summary.totals = {k: v for k, v in totals.items() if v}
    summary.image_problems = problem_counts
    summary.manifest = manifest_path
    shown = ", ".join(f"{k} {v}" for k, v in summary.totals.items()) or "no annotations"
    console.print(f"wrote {output}: {shown}", highlight=False, soft_wrap=True)
    if problem_counts:
        listed = ", ".join(f"{k} {v}" for k, v in problem_counts.items())
        console.print(f"images not refined: {listed} (see the accounting file)", highlight=False)


def _arguments(config: RefineConfig) -> dict[str, Any]:
    """The configuration as JSON, without the switches that cannot change the output."""
    args = asdict(config)
    for key in ("resume", "progress", "workers"):
        args.pop(key)
    for key, value in list(args.items()):
        if isinstance(value, Path):
            args[key] = str(value)
        elif isinstance(value, tuple):
            args[key] = [str(v) if isinstance(v, Path) else v for v in value]
    return args
