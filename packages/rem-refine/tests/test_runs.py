"""Crash safety and sharding: a run killed with SIGKILL at several points (and left with a torn
last line) and then resumed, and a run split over 2 gloo processes, must write exactly the bytes
of one uninterrupted single-process run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
        "--input-json",
        str(inp),
        "--image-dir",
        str(synth_sample.image_dir),
        "--arch",
        "tiny",
        "--checkpoint",
        str(tiny_checkpoint),
        "--num-trials",
        "2",
        "--num-extra-points",
        "1",
        "--no-progress",
        "--workers",
        "1",
    ]
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


# Runs `rem refine` with the batch writer patched to stop the process (SIGSTOP) right after each
# line is on disk, so the test can SIGKILL it at an exact point instead of racing a fast run.
_STOP_AFTER_EACH_LINE = """
import os, signal, sys
from rem_refine import partial
from rem_refine.__main__ import main

write = partial.BatchWriter.write

def write_then_stop(self, record):
    write(self, record)
    os.kill(os.getpid(), signal.SIGSTOP)

partial.BatchWriter.write = write_then_stop
sys.argv[0] = "rem_refine"
main()
"""


def _kill_after(cmd: list[str], partial: Path, lines: int) -> None:
    """Run ``cmd`` until ``lines`` result lines are on disk, then SIGKILL it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            _, status = os.waitpid(proc.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status), "the run ended before it could be killed"
            if _complete_lines(partial) >= lines:
                break
            os.kill(proc.pid, signal.SIGCONT)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        os.waitpid(proc.pid, 0)
        proc.returncode = -signal.SIGKILL


def test_sigkill_at_any_point_then_resume_is_byte_identical(job):
    out = job.root / "killed.json"
    partial = job.root / "killed.json.partial"
    args = [*job.args, "-o", str(out), "--resume"]
    cmd = [sys.executable, "-m", "rem_refine", *args]
    for lines in (1, 2):  # kill after the first batch, then after the second (while resumed)
        _kill_after([sys.executable, "-c", _STOP_AFTER_EACH_LINE, *args], partial, lines)
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
