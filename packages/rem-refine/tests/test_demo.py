"""The "20-refine" demo step: refines the coarse sample, hands the file on, reports Boundary IoU."""

from __future__ import annotations

import io
from importlib.metadata import entry_points
from pathlib import Path

import orjson
from rich.console import Console

from rem_core.demo import DemoContext
from rem_refine.demo import _find_sam, mean_boundary_iou, step


def test_demo_step_uses_grabcut_without_weights(tmp_path, synth_sample, monkeypatch):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("REM_SAM_CHECKPOINT", raising=False)
    out = io.StringIO()
    ctx = DemoContext(
        out_dir=tmp_path,
        seed=0,
        console=Console(file=out, width=200),
        artifacts={
            "images": synth_sample.image_dir,
            "exact": synth_sample.exact,
            "coarse": synth_sample.coarse,
        },
    )
    step(ctx)
    refined = ctx.artifacts["refined"]
    assert refined == tmp_path / "refined.json"
    data = orjson.loads(refined.read_bytes())
    coarse = orjson.loads(synth_sample.coarse.read_bytes())
    assert [a["id"] for a in data["annotations"]] == [a["id"] for a in coarse["annotations"]]
    text = out.getvalue()
    assert "GrabCut" in text
    before, _ = mean_boundary_iou(synth_sample.exact, synth_sample.coarse)
    after, _ = mean_boundary_iou(synth_sample.exact, refined)
    assert f"coarse {before:.3f} -> refined {after:.3f}" in text
    step(ctx)  # a second demo run in the same folder starts clean


def test_demo_prefers_a_configured_or_cached_sam(tmp_path, monkeypatch):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("REM_SAM_CHECKPOINT", raising=False)
    assert _find_sam() is None
    from rem_refine.weights import cached_path

    cached_path("sam_vit_b").write_bytes(b"x")
    assert _find_sam() == ("vit_b", cached_path("sam_vit_b"))
    cached_path("mobile_sam").write_bytes(b"x")
    assert _find_sam() == ("vit_t", cached_path("mobile_sam"))  # the fastest one first
    monkeypatch.setenv("REM_SAM_CHECKPOINT", "/x/sam.pth")
    monkeypatch.setenv("REM_SAM_ARCH", "vit_l")
    assert _find_sam() == ("vit_l", Path("/x/sam.pth"))


def test_demo_step_is_registered():
    names = {ep.name: ep.value for ep in entry_points(group="rem.demo_steps")}
    assert names.get("20-refine") == "rem_refine.demo:step"
