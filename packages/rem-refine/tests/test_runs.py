"""Crash safety and sharding: a run killed with SIGKILL at several points (and left with a torn
last line) and then resumed, and a run split over 2 gloo processes, must write exactly the bytes
of one uninterrupted single-process run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import subset

from rem_core.cli.main import cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


@pytest.fixture(scope="module")
def job(tmp_path_factory, synth_sample, tiny_checkpoint):
    root = tmp_path_factory.mktemp("runs")
    inp = subset(synth_sample.coarse, root / "in.json", 1)
    args = [
        "--input-json", str(inp), "--image-dir", str(synth_sample.image_dir),
        "--arch", "tiny", "--checkpoint", str(tiny_checkpoint), "--num-trials", "2",
        "--num-extra-points", "1", "--no-progress", "--workers", "1",
    ]  # fmt: skip
    ref = root / "ref.json"
    result = CliRunner().invoke(cli, ["refine", *args, "-o", str(ref)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    batches = len({a["image_id"] for a in orjson.loads(inp.read_bytes())["annotations"]})
    assert batches >= 3
    return types.SimpleNamespace(root=root, args=args, ref=ref, batches=batches)


def _complete_lines(folder: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in folder.glob("part-*.jsonl"))


def _manifest(out: Path) -> dict:
    data = orjson.loads(out.with_name(out.stem + ".manifest.json").read_bytes())
    data["arguments"].pop("output")
    data["output"].pop("path")
    return data


def test_sigkill_at_any_point_then_resume_is_byte_identical(job):
    out = job.root / "killed.json"
    partial = job.root / "killed.json.partial"
    cmd = [sys.executable, "-m", "rem_refine", *job.args, "-o", str(out), "--resume"]
    for lines in (1, 2):  # kill after the first batch, then after the second (while resumed)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while _complete_lines(partial) < lines and proc.poll() is None:
            assert time.monotonic() < deadline, "no results streamed"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not out.exists()
        assert _complete_lines(partial) == lines  # nothing redone, nothing lost
    # A kill in the middle of a write leaves half a line: it must be ignored and cut off.
    part = next(partial.glob("part-*.jsonl"))
    with open(part, "ab") as f:
        f.write(b'{"batch": 2, "images": [{"image_id": 3, "anns": [{"ind')
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert out.read_bytes() == job.ref.read_bytes()
    assert _manifest(out) == _manifest(job.ref)
    assert not partial.exists()


def test_two_gloo_processes_write_the_same_bytes(job):
    out = job.root / "two.json"
    rem = Path(sys.executable).with_name("rem")
    cmd = [str(rem), "refine", *job.args, "-o", str(out), "--nproc", "2"]
    # torchrun gives each rank one CPU thread; the single-process reference used several.
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.read_bytes() == job.ref.read_bytes()
    assert _manifest(out) == _manifest(job.ref)
