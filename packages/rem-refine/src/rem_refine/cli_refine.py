"""`rem refine`: stage 1, SAM boundary refinement of every non-crowd mask.

Every argument of the reference ``refine_boundaries.py`` exists under the same name and meaning
(``--input-json``, ``--image-dir``, ``--num-gpus``, ``--output``, ``--arch``, ``--checkpoint``,
``--num-extra-points``, ``--num-trials``, ``--box-only-names``) plus the constructor-only
``--min-mask-region-area``. torch is imported only when the command runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from rem_refine.box_only import DEFAULT_BOX_ONLY_NAMES, split_names

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)
ARCH_CHOICES = ["vit_h", "vit_l", "vit_b", "vit_t", "mobile_sam", "tiny", "tiny_vit_t"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--input-json", required=True, type=_FILE, help="COCO or LVIS instances JSON.")
@click.option("--output", "-o", required=True, type=_FILE, help="Refined JSON to write.")
@click.option(
    "--image-dir",
    "image_dirs",
    multiple=True,
    type=_DIR,
    default=[Path("datasets/coco/val2017")],
    show_default=True,
    help="Image root; repeat for several (LVIS: train2017 and val2017). Images are found by "
    "file_name, then coco_url, then the zero-padded id.",
)
@click.option(
    "--backend",
    type=click.Choice(["sam", "grabcut"]),
    default="sam",
    show_default=True,
    help="sam: the reference algorithm; grabcut: weight-free OpenCV refinement on the CPU.",
)
@click.option(
    "--arch",
    type=click.Choice(ARCH_CHOICES),
    default="vit_h",
    show_default=True,
    help="SAM image encoder (vit_t = MobileSAM; tiny* are random-weight test models).",
)
@click.option(
    "--checkpoint",
    type=_FILE,
    default=None,
    help="SAM weights [default: the cached `rem weights download` file for --arch].",
)
@click.option(
    "--num-extra-points",
    type=int,
    default=2,
    show_default=True,
    help="Point-prompt rounds after the box-only round.",
)
@click.option(
    "--num-trials",
    type=int,
    default=10,
    show_default=True,
    help="Stochastic trials per instance, majority-voted.",
)
@click.option(
    "--box-only-names",
    multiple=True,
    default=[",".join(DEFAULT_BOX_ONLY_NAMES)],
    show_default=True,
    help="Classes prompted with boxes only (comma-separated or repeated; COCO or LVIS "
    "spelling, LVIS synonyms accepted).",
)
@click.option("--box-only-ids", multiple=True, type=int, help="Box-only classes by category id.")
@click.option(
    "--min-mask-region-area",
    type=int,
    default=100,
    show_default=True,
    help="Holes and islands below this many pixels are removed (masks > 10x it).",
)
@click.option(
    "--category-ids",
    default=None,
    help="Refine only these category ids (comma-separated); others are kept as is.",
)
@click.option(
    "--coco-mapped-only",
    is_flag=True,
    help="LVIS input: refine only the 79 classes stage 2 can use.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of all random draws.")
@click.option(
    "--fallback-scope",
    type=click.Choice(["trial", "instance"]),
    default="trial",
    show_default=True,
    help="Empty SAM output is replaced by the source mask per trial, or jointly over "
    "an instance's trials (reference).",
)
@click.option(
    "--box-clamp",
    type=click.Choice(["image", "canvas"]),
    default="image",
    show_default=True,
    help="Clamp prompt boxes to the resized image, or to the 1024 canvas (reference).",
)
@click.option(
    "--on-empty",
    type=click.Choice(["source", "write-empty"]),
    default="source",
    show_default=True,
    help="An empty refined mask keeps the source mask, or is written empty (reference).",
)
@click.option(
    "--reference",
    "reference_mode",
    is_flag=True,
    help="Reference behaviour for all three: --fallback-scope instance --box-clamp "
    "canvas --on-empty write-empty.",
)
@click.option(
    "--exif",
    type=click.Choice(["auto", "apply", "ignore"]),
    default="auto",
    show_default=True,
    help="EXIF orientation: apply (reference), ignore, or auto (apply unless only the "
    "stored orientation matches the JSON size).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16 autocast on CUDA (faster; may flip border pixels).",
)
@click.option(
    "--image-batch",
    type=int,
    default=1,
    show_default=True,
    help="Images per encoder batch (also the unit of sharding and resuming).",
)
@click.option(
    "--decoder-units",
    type=int,
    default=256,
    show_default=True,
    help="(instance, trial) units per mask-decoder call.",
)
@click.option(
    "--workers",
    type=int,
    default=min(8, os.cpu_count() or 1),
    show_default=True,
    help="Threads reading and preparing images.",
)
@click.option(
    "--num-gpus",
    type=int,
    default=0,
    show_default=True,
    help="Reference name: 0 or 1 runs in this process, N > 1 is --nproc N.",
)
@click.option(
    "--nproc",
    type=int,
    default=1,
    show_default=True,
    help="Processes on this machine (launched through torchrun).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its results.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def refine(**kw) -> None:
    """Refine every non-crowd mask with SAM: box prompt, error-point rounds, trial majority vote.

    The output keeps every record and key of the input, in input order; refined masks are
    uncompressed RLE. Beside it: OUTPUT.manifest.json (versions, arguments, seed, checksums,
    counts) and OUTPUT.accounting.json (what happened to each annotation, per category).
    """
    nproc = max(kw.pop("nproc"), kw.pop("num_gpus"))
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        sys.exit(_launch(nproc))
    from rem_refine.stage1 import RefineConfig, run_refine

    if kw.pop("reference_mode"):
        kw.update(fallback_scope="instance", box_clamp="canvas", on_empty="write-empty")
    category_ids = kw.pop("category_ids")
    config = RefineConfig(
        input_json=kw.pop("input_json"),
        output=kw.pop("output"),
        image_dirs=tuple(kw.pop("image_dirs")),
        box_only_names=tuple(split_names(kw.pop("box_only_names"))),
        box_only_ids=tuple(kw.pop("box_only_ids")),
        category_ids=None if category_ids is None else _int_list(category_ids),
        arch=kw.pop("arch"),
        **kw,
    )
    run_refine(config)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated ids, got {text!r}") from None


def _launch(nproc: int) -> int:
    """Re-run this command under torchrun with ``nproc`` local processes."""
    args = _strip_process_options(sys.argv[1:])
    if args and args[0] == "refine":
        args = args[1:]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "rem_refine",
        *args,
    ]
    return subprocess.call(cmd)


def _strip_process_options(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--nproc", "--num-gpus"):
            skip = True
            continue
        if arg.startswith(("--nproc=", "--num-gpus=")):
            continue
        out.append(arg)
    return out
