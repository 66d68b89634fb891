"""`rem eval` and `rem eval-referring`.

    rem eval GT RESULTS --iou-type segm boundary bbox [--lvis] [--per-class] [--json out.json]
    rem eval coco_2017_val coco_rem_val RESULTS --coco-rem      # one model, two ground truths
    rem eval voc_2012_val.json RESULTS --voc [--iou-thrs 0.25,0.5,0.7,0.75] [--use-07-metric]

Several ground truths (paths or dataset names) before RESULTS give a side-by-side table of AP
at every IoU threshold with the differences, COCO-ReM's main use.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.console import Console

from rem_core.errors import RemError
from rem_eval.params import IOU_TYPES

_MULTI_VALUE = {"--iou-type", "-t"}


def _expand_multi(args: list[str]) -> list[str]:
    """Let ``--iou-type segm boundary bbox`` list several values after one flag."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        out.append(a)
        i += 1
        if a in _MULTI_VALUE:
            if i < len(args):
                out.append(args[i])
                i += 1
            while i < len(args) and args[i] in IOU_TYPES and not Path(args[i]).exists():
                out += [a, args[i]]
                i += 1
    return out


class _EvalCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_multi(list(args)))


def _configure_logging(verbose: bool) -> None:
    if verbose:
        logging.basicConfig(format="%(message)s")
        logging.getLogger("rem_eval").setLevel(logging.DEBUG)


@click.command(
    "eval",
    cls=_EvalCommand,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("paths", nargs=-1, required=True, metavar="GT [GT...] RESULTS")
@click.option(
    "--iou-type",
    "-t",
    "iou_types",
    multiple=True,
    type=click.Choice(IOU_TYPES),
    help="segm, bbox and/or boundary; several may follow one flag (default: segm, or bbox for "
    "box-only results).",
)
@click.option("--lvis", is_flag=True, help="LVIS federated evaluation (lvis-api).")
@click.option(
    "--voc",
    is_flag=True,
    help="PASCAL VOC devkit mask AP (area under the precision envelope) at each --iou-thrs "
    "(default 0.25,0.5,0.7,0.75): the mAP25/50/70/75 of weakly supervised papers.",
)
@click.option("--use-07-metric", is_flag=True, help="With --voc: VOC2007's 11-point AP.")
@click.option(
    "--iou-thrs",
    default=None,
    help="IoU thresholds, comma-separated (default .50:.05:.95; --voc: 0.25,0.5,0.7,0.75).",
)
@click.option("--per-class", is_flag=True, help="Also print the per-category AP table.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as JSON.",
)
@click.option(
    "--arrays", is_flag=True, help="Include precision / recall / scores arrays in the JSON."
)
@click.option(
    "--coco-rem",
    is_flag=True,
    help="COCO-ReM's evaluator: segm and boundary, result boxes dropped (mask areas), "
    "GT ignore = ignore OR iscrowd.",
)
@click.option(
    "--mask-areas", is_flag=True, help="Drop result boxes for mask evaluation (areas from masks)."
)
@click.option(
    "--dilation-ratio",
    type=float,
    default=None,
    help="Boundary band width / image diagonal (0.02).",
)
@click.option(
    "--max-dets", type=int, multiple=True, help="maxDets (repeat; LVIS: one value, default 300)."
)
@click.option("--class-agnostic", is_flag=True, help="useCats=0: pool all categories per image.")
@click.option(
    "--gt-ignore",
    type=click.Choice(["iscrowd", "ignore_or_iscrowd", "ignore"]),
    default=None,
    help="GT ignore rule (default: pycocotools' for segm/bbox, boundary-iou-api's for boundary).",
)
@click.option(
    "--skip-unknown-categories",
    is_flag=True,
    help="Skip detections of categories missing from the GT (the references' behaviour) "
    "instead of failing.",
)
@click.option(
    "--workers", type=int, default=None, help="Worker processes (default: all CPUs, max 8)."
)
@click.option("-v", "--verbose", is_flag=True, help="Log phase timings.")
def eval_command(
    paths: tuple[str, ...],
    iou_types: tuple[str, ...],
    lvis: bool,
    voc: bool,
    use_07_metric: bool,
    iou_thrs: str | None,
    per_class: bool,
    json_path: Path | None,
    arrays: bool,
    coco_rem: bool,
    mask_areas: bool,
    dilation_ratio: float | None,
    max_dets: tuple[int, ...],
    class_agnostic: bool,
    gt_ignore: str | None,
    skip_unknown_categories: bool,
    workers: int | None,
    verbose: bool,
) -> None:
    """Evaluate RESULTS (COCO results JSON) against one or more ground truths.

    Numbers equal pycocotools' (segm, bbox), boundary-iou-api's (boundary) and lvis-api's
    (--lvis); --voc follows the PASCAL VOC devkit. A ground truth is a path or a known dataset
    name (see `rem datasets`).
    """
    from rem_core.io import save_json
    from rem_core.schemas.eval_report import EvalComparison
    from rem_eval.api import evaluate, evaluate_many
    from rem_eval.view import comparison_table, per_class_table, print_warnings, report_table
    from rem_eval.voc import VOC_IOU_THRS, evaluate_voc_many

    _configure_logging(verbose)
    if len(paths) < 2:
        raise RemError("give a ground truth and a results file: rem eval GT [GT...] RESULTS")
    *gts, results = paths
    kinds = list(iou_types)
    thresholds = _thresholds(iou_thrs)
    if use_07_metric and not voc:
        raise RemError("--use-07-metric needs --voc", where="--use-07-metric")
    if coco_rem:
        kinds = kinds or ["segm", "boundary"]
        mask_areas = True
        gt_ignore = gt_ignore or "ignore_or_iscrowd"
    kwargs = {
        "lvis": lvis,
        "max_dets": list(max_dets) or None,
        "use_cats": False if class_agnostic else None,
        "dilation_ratio": dilation_ratio,
        "mask_areas": mask_areas,
        "gt_ignore": gt_ignore,
        "strict_categories": not skip_unknown_categories,
        "workers": workers,
        "arrays": arrays,
        "per_category": True,
        "iou_thrs": thresholds,
    }
    if voc:
        _check_voc_options(kinds, kwargs, coco_rem)
        reports = evaluate_voc_many(
            gts,
            results,
            thresholds or VOC_IOU_THRS,
            use_07_metric=use_07_metric,
            gt_ignore=gt_ignore or "ignore_or_iscrowd",
            strict_categories=not skip_unknown_categories,
        ).reports
    elif len(gts) == 1:
        reports = [evaluate(gts[0], results, kinds or None, **kwargs)]
    else:
        reports = evaluate_many(gts, results, kinds or None, **kwargs).reports
    console = Console()
    for r in reports:
        print_warnings(console, r.warnings)
        console.print(report_table(r))
        if per_class:
            console.print(per_class_table(r))
    comp = EvalComparison(results=reports[0].results, reports=reports) if len(reports) > 1 else None
    if comp is not None:
        console.print(comparison_table(comp))
    if json_path is not None:
        save_json(json_path, (comp or reports[0]).model_dump(mode="json"), indent=True)
        console.print(f"report written to {json_path}")


def _thresholds(text: str | None) -> list[float] | None:
    """``--iou-thrs 0.25,0.5`` as floats in [0, 1]."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RemError(
            f"expected numbers separated by commas, got {text!r}", where="--iou-thrs"
        ) from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise RemError(f"thresholds must lie in [0, 1], got {text!r}", where="--iou-thrs")
    return values


def _check_voc_options(kinds: list[str], kwargs: dict, coco_rem: bool) -> None:
    """--voc evaluates masks with the devkit's rules; COCO/LVIS-only switches make no sense."""
    if kinds and kinds != ["segm"]:
        raise RemError("--voc evaluates masks: use --iou-type segm", where="--iou-type")
    given = {
        "--lvis": kwargs["lvis"],
        "--coco-rem": coco_rem,
        "--mask-areas": kwargs["mask_areas"],
        "--dilation-ratio": kwargs["dilation_ratio"] is not None,
        "--max-dets": kwargs["max_dets"] is not None,
        "--class-agnostic": kwargs["use_cats"] is False,
        "--arrays": kwargs["arrays"],
    }
    for flag, on in given.items():
        if on:
            raise RemError(f"{flag} does not apply to --voc", where=flag)


@click.command("eval-referring", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("gt", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("predictions", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(["default", "legacy-lavt", "legacy-seqtr"]),
    default="default",
    show_default=True,
    help="Convention to reproduce (LAVT's test.py or SeqTR's numbers).",
)
@click.option("--resolution", default=None, help="original | square:N | letterbox:LONG:MULTIPLE")
@click.option(
    "--gt-mask",
    type=click.Choice(["union", "exclusive"]),
    default=None,
    help="Multi-polygon GT: union, or LAVT's pixels-of-one-polygon.",
)
@click.option(
    "--crowd-quirk/--no-crowd-quirk",
    default=None,
    help="SeqTR: multi-polygon GT scored as crowd (I/|P|).",
)
@click.option(
    "--empty-union",
    type=click.Choice(["zero", "one", "skip"]),
    default=None,
    help="Score when prediction and GT are both empty.",
)
@click.option(
    "--unit",
    type=click.Choice(["sentence", "ref"]),
    default=None,
    help="One sample per sentence or per ref.",
)
@click.option(
    "--batch-size", type=int, default=None, help="Prec@X as the mean of per-batch shares (SeqTR)."
)
@click.option("--split", default=None, help="Only samples of this split (val, testA...).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as JSON.",
)
def eval_referring(
    gt: Path,
    predictions: Path,
    preset: str,
    resolution: str | None,
    gt_mask: str | None,
    crowd_quirk: bool | None,
    empty_union: str | None,
    unit: str | None,
    batch_size: int | None,
    split: str | None,
    json_path: Path | None,
) -> None:
    """Referring-segmentation oIoU, mIoU and Prec@0.5..0.9 of PREDICTIONS against GT."""
    from rem_core.io import save_json
    from rem_eval.referring import config_from_options, evaluate_referring
    from rem_eval.view import print_warnings, referring_table

    config = config_from_options(
        preset,
        resolution=resolution,
        gt_mask=gt_mask,
        crowd_quirk=crowd_quirk,
        empty_union=empty_union,
        unit=unit,
        batch_size=batch_size,
    )
    report = evaluate_referring(gt, predictions, config, split=split)
    console = Console()
    print_warnings(console, report.warnings)
    console.print(referring_table(report))
    if json_path is not None:
        save_json(json_path, report.model_dump(mode="json"), indent=True)
        console.print(f"report written to {json_path}")
