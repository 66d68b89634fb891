"""Results streamed to disk as they are made, so a crashed run can resume (``--resume``).

Layout, beside the output ``OUT.json``::

    OUT.json.partial/
        run.json                    what the results depend on (compared on --resume)
        part-000-of-002.jsonl       one line per finished batch of images, rank 0 of 2
        part-001-of-002.jsonl       ... rank 1

A line is written with one ``write`` and fsync'ed, so after a crash a file holds whole lines plus
at most one torn last line, which is ignored when reading and cut off before appending. A batch
is done when its line is whole; a resumed run (any number of processes) skips done batches.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from rem_core.atomic import atomic_write_bytes
from rem_core.errors import RemError
from rem_core.io import dumps_json


def partial_dir(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


class PartialResults:
    """The ``.partial`` folder of one output file."""

    def __init__(self, output: Path) -> None:
        self.dir = partial_dir(output)
        self.run_file = self.dir / "run.json"

    def exists(self) -> bool:
        return self.run_file.is_file()

    def create(self, fingerprint: dict[str, Any]) -> None:
        """Start a fresh folder (any old one is removed) recording ``fingerprint``."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        atomic_write_bytes(self.run_file, dumps_json(fingerprint, indent=True))

    def check(self, fingerprint: dict[str, Any]) -> None:
        """Raise unless the folder was made by a run with the same ``fingerprint``."""
        try:
            recorded = orjson.loads(self.run_file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise RemError(
                f"cannot read the partial run record: {exc}", path=self.run_file
            ) from None
        differing = sorted(
            k for k in set(recorded) | set(fingerprint) if recorded.get(k) != fingerprint.get(k)
        )
        if differing:
            shown = ", ".join(
                f"{k}: {recorded.get(k)!r} -> {fingerprint.get(k)!r}" for k in differing[:4]
            )
            raise RemError(
                f"--resume with different settings or input ({shown}); rerun with the original "
                "ones or delete the folder to start over",
                path=self.dir,
            )

    def part_path(self, rank: int, world: int) -> Path:
        return self.dir / f"part-{rank:03d}-of-{world:03d}.jsonl"

    def lines(self) -> Iterator[dict[str, Any]]:
        """Every whole line of every part file (torn last lines skipped)."""
        for path in sorted(self.dir.glob("part-*.jsonl")):
            data = path.read_bytes()
            for raw in data.split(b"\n")[:-1]:  # the piece after the last newline is torn
                try:
                    yield orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue

    def done_batches(self) -> set[int]:
        return {int(line["batch"]) for line in self.lines()}

    def open_writer(self, rank: int, world: int) -> BatchWriter:
        return BatchWriter(self.part_path(rank, world))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class BatchWriter:
    """Appends whole lines to a part file, after cutting off a torn tail left by a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            data = path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                with open(path, "r+b") as f:
                    f.truncate(keep)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        data = memoryview(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        while data:
            data = data[os.write(self.fd, data) :]
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
