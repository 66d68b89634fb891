"""Summaries of the accumulated arrays: the references' own numbers and named metrics.

``coco_reference_stats`` is COCOeval.summarize's 12-number vector computed the reference's way,
quirks included: thresholds are looked up by float equality and stats[0] always asks for
maxDets == 100 (eval.md §1.7). ``named_stats`` is what rem reports: the same means, but
thresholds are found by index (so AP90 exists although linspace gives 0.8999999999999999) and
AP / AR use the largest maxDets given. With default parameters both agree wherever both exist.
``lvis_reference_stats`` is LVISEval.summarize.
"""

from __future__ import annotations

import numpy as np

from rem_eval.params import EvalParams

_AREA_SHORT = {"small": "s", "medium": "m", "large": "l"}


def _mean_valid(s: np.ndarray) -> float:
    """The reference's ``np.mean(s[s > -1])``, -1 when nothing is valid."""
    valid = s[s > -1]
    if len(valid) == 0:
        return -1.0
    return float(np.mean(valid))


def coco_summarize(
    precision: np.ndarray,
    recall: np.ndarray,
    p: EvalParams,
    ap: bool,
    iou_thr: float | None = None,
    area: str = "all",
    max_dets: int = 100,
) -> float:
    """COCOeval.summarize's inner ``_summarize``, same indexing and same float equality."""
    aind = [i for i, a in enumerate(p.area_rng_lbl) if a == area]
    mind = [i for i, m in enumerate(p.max_dets) if m == max_dets]
    if ap:
        s = precision
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iou_thrs)[0]]
        s = s[:, :, :, aind, mind]
    else:
        s = recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iou_thrs)[0]]
        s = s[:, :, aind, mind]
    return _mean_valid(s)


def coco_reference_stats(precision: np.ndarray, recall: np.ndarray, p: EvalParams) -> list[float]:
    """COCOeval.stats (12 numbers). With fewer than 3 maxDets the reference crashes; here the
    last maxDets stands in for the missing ones."""
    md = [p.max_dets[min(i, len(p.max_dets) - 1)] for i in range(3)]

    def s(*args, **kw) -> float:
        return coco_summarize(precision, recall, p, *args, **kw)

    return [
        s(True),
        s(True, iou_thr=0.5, max_dets=md[2]),
        s(True, iou_thr=0.75, max_dets=md[2]),
        s(True, area="small", max_dets=md[2]),
        s(True, area="medium", max_dets=md[2]),
        s(True, area="large", max_dets=md[2]),
        s(False, max_dets=md[0]),
        s(False, max_dets=md[1]),
        s(False, max_dets=md[2]),
        s(False, area="small", max_dets=md[2]),
        s(False, area="medium", max_dets=md[2]),
        s(False, area="large", max_dets=md[2]),
    ]


def threshold_index(iou_thrs: np.ndarray, value: float) -> int | None:
    """Index of the IoU threshold nearest ``value`` (within 1e-9), or None."""
    hit = np.flatnonzero(np.abs(np.asarray(iou_thrs) - value) < 1e-9)
    return int(hit[0]) if hit.size else None


def threshold_key(thr: float) -> str:
    """``AP50`` for 0.5, ``AP90`` for linspace's 0.8999999999999999; ``AP@0.425`` otherwise."""
    pct = thr * 100
    if abs(pct - round(pct)) < 1e-6:
        return f"AP{round(pct)}"
    return f"AP@{thr:g}"


def _none(v: float) -> float | None:
    return None if v == -1 else v


def named_stats(
    precision: np.ndarray, recall: np.ndarray, p: EvalParams, lvis: bool = False
) -> dict[str, float | None]:
    """AP, AP50 ... AP95, APs/m/l, AR@each maxDets, ARs/m/l (COCO); -1 becomes None.

    For LVIS (no maxDets axis) the AR keys are ``AR@300`` style, as lvis-api names them.
    """
    if lvis:
        precision = precision[..., None]
        recall = recall[..., None]
    m_last = len(p.max_dets) - 1
    a_all = [i for i, a in enumerate(p.area_rng_lbl) if a == "all"][:1] or [0]
    out: dict[str, float | None] = {}
    out["AP"] = _none(_mean_valid(precision[:, :, :, a_all, m_last]))
    for t, thr in enumerate(np.asarray(p.iou_thrs).tolist()):
        out[threshold_key(thr)] = _none(_mean_valid(precision[[t]][:, :, :, a_all, m_last]))
    for a, lbl in enumerate(p.area_rng_lbl):
        if lbl == "all":
            continue
        key = _AREA_SHORT.get(lbl, f"_{lbl}")
        out[f"AP{key}"] = _none(_mean_valid(precision[:, :, :, [a], m_last]))
    for mi, m in enumerate(p.max_dets):
        key = f"AR@{m}" if lvis else f"AR{m}"
        out[key] = _none(_mean_valid(recall[:, :, a_all, mi]))
    for a, lbl in enumerate(p.area_rng_lbl):
        if lbl == "all":
            continue
        key = _AREA_SHORT.get(lbl, f"_{lbl}")
        name = f"AR{key}@{p.max_dets[-1]}" if lvis else f"AR{key}"
        out[name] = _none(_mean_valid(recall[:, :, [a], m_last]))
    return out


LVIS_STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"]


def lvis_freq_groups(frequency: list[str | None]) -> list[list[int]]:
    """Category indices of the r / c / f groups (categories without the field belong to none)."""
    groups: list[list[int]] = [[], [], []]
    for k, f in enumerate(frequency):
        if f in ("r", "c", "f"):
            groups["rcf".index(f)].append(k)
    return groups


def lvis_reference_stats(
    precision: np.ndarray,
    recall: np.ndarray,
    p: EvalParams,
    freq_groups: list[list[int]],
) -> dict[str, float]:
    """LVISEval.summarize's results dict: (T, R, K, A) precision, (T, K, A) recall."""

    def summ(kind: str, iou_thr=None, area="all", freq=None) -> float:
        aidx = [i for i, a in enumerate(p.area_rng_lbl) if a == area]
        if kind == "ap":
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == p.iou_thrs)[0]]
            s = s[:, :, freq_groups[freq], aidx] if freq is not None else s[:, :, :, aidx]
        else:
            s = recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == p.iou_thrs)[0]]
            s = s[:, :, aidx]
        return _mean_valid(s)

    md = p.max_dets[-1]
    out = {
        "AP": summ("ap"),
        "AP50": summ("ap", iou_thr=0.5),
        "AP75": summ("ap", iou_thr=0.75),
        "APs": summ("ap", area="small"),
        "APm": summ("ap", area="medium"),
        "APl": summ("ap", area="large"),
        "APr": summ("ap", freq=0),
        "APc": summ("ap", freq=1),
        "APf": summ("ap", freq=2),
        f"AR@{md}": summ("ar"),
    }
    for area in ("small", "medium", "large"):
        out[f"AR{area[0]}@{md}"] = summ("ar", area=area)
    return out


def per_category_ap(precision: np.ndarray, p: EvalParams, lvis: bool = False) -> dict[str, list]:
    """Per-category AP, AP50, AP75 (area all, largest maxDets): mean over valid entries."""
    if lvis:
        precision = precision[..., None]
    a_all = ([i for i, a in enumerate(p.area_rng_lbl) if a == "all"] or [0])[0]
    pk = precision[:, :, :, a_all, -1]  # (T, R, K)
    out: dict[str, list] = {"ap": [], "ap50": [], "ap75": []}
    t50 = threshold_index(p.iou_thrs, 0.5)
    t75 = threshold_index(p.iou_thrs, 0.75)
    for k in range(pk.shape[2]):
        out["ap"].append(_none(_mean_valid(pk[:, :, k])))
        out["ap50"].append(None if t50 is None else _none(_mean_valid(pk[t50, :, k])))
        out["ap75"].append(None if t75 is None else _none(_mean_valid(pk[t75, :, k])))
    return out


def stats_lines(stats: dict[str, float | None]) -> list[str]:
    """Plain-text lines in pycocotools' print format for the 12 classic stats."""
    rows = [
        ("Average Precision", "(AP)", "0.50:0.95", "all", 100, "AP"),
        ("Average Precision", "(AP)", "0.50", "all", 100, "AP50"),
        ("Average Precision", "(AP)", "0.75", "all", 100, "AP75"),
        ("Average Precision", "(AP)", "0.50:0.95", "small", 100, "APs"),
        ("Average Precision", "(AP)", "0.50:0.95", "medium", 100, "APm"),
        ("Average Precision", "(AP)", "0.50:0.95", "large", 100, "APl"),
        ("Average Recall", "(AR)", "0.50:0.95", "all", 1, "AR1"),
        ("Average Recall", "(AR)", "0.50:0.95", "all", 10, "AR10"),
        ("Average Recall", "(AR)", "0.50:0.95", "all", 100, "AR100"),
        ("Average Recall", "(AR)", "0.50:0.95", "small", 100, "ARs"),
        ("Average Recall", "(AR)", "0.50:0.95", "medium", 100, "ARm"),
        ("Average Recall", "(AR)", "0.50:0.95", "large", 100, "ARl"),
    ]
    out = []
    for title, kind, iou, area, md, key in rows:
        v = stats.get(key)
        val = -1.0 if v is None else v
        out.append(
            f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={md:>3d} ] = {val:0.3f}"
        )
    return out
