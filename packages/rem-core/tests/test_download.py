"""rem_core.download against a local HTTP server: checksums, resume, retries, archives."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from local_http import LocalServer, Served
from rich.console import Console

from rem_core import download as dl
from rem_core.download import ChecksumError, DownloadError, download
from rem_core.errors import RemError

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: more than one chunk


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def console():
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)


def test_download_verifies_sha256_and_renames_into_place(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD)
    dest = tmp_path / "sub" / "f.bin"
    out = download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, console=console)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]  # no .part, no record
    assert server.body_bytes == len(PAYLOAD)


def test_resume_from_partial_part_fetches_only_the_remainder(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD)
    dest = tmp_path / "f.bin"
    done = 300_001
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:done])
    download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, console=console)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("f.bin", f"bytes={done}-")]
    assert server.body_bytes == len(PAYLOAD) - done
    assert not (tmp_path / "f.bin.part").exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD, ranges=False)
    dest = tmp_path / "f.bin"
    # A stale prefix that is not even right: appending to it would corrupt the file.
    (tmp_path / "f.bin.part").write_bytes(b"x" * 1000)
    download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, console=console)
    assert dest.read_bytes() == PAYLOAD
    assert server.body_bytes == len(PAYLOAD)
    assert "does not support resuming" in console.file.getvalue()


def test_dropped_connection_keeps_part_and_next_call_resumes(server, tmp_path, console):
    cut = 400_000
    server.files["f.bin"] = Served(PAYLOAD, drop_after=cut)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as info:
        download(
            server.url("f.bin"), dest, sha(PAYLOAD), progress=False, retries=0, console=console
        )
    message = str(info.value)
    assert "\n" not in message
    assert server.url("f.bin") in message
    assert f"connection closed after {cut} of {len(PAYLOAD)} bytes" in message
    assert "run again to resume" in message
    assert not dest.exists()
    assert (tmp_path / "f.bin.part").read_bytes() == PAYLOAD[:cut]

    sent_before = server.body_bytes
    download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, console=console)
    assert dest.read_bytes() == PAYLOAD
    assert server.body_bytes - sent_before == len(PAYLOAD) - cut
    assert server.requests[-1] == ("f.bin", f"bytes={cut}-")


def test_dropped_connection_is_retried_within_one_call(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD, drop_after=123_456)
    dest = tmp_path / "f.bin"
    download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, retries=2, console=console)
    assert dest.read_bytes() == PAYLOAD
    assert server.body_bytes == len(PAYLOAD)  # the retry fetched only what was missing
    assert [r for _, r in server.requests] == [None, "bytes=123456-"]


def test_parallel_downloads_of_one_file_fetch_it_once(server, tmp_path):
    gate = threading.Event()
    server.files["f.bin"] = Served(PAYLOAD, gate=gate)
    dest = tmp_path / "f.bin"
    logs = [io.StringIO(), io.StringIO()]
    errors: list[BaseException] = []

    def fetch(i: int) -> None:
        try:
            download(
                server.url("f.bin"),
                dest,
                sha(PAYLOAD),
                progress=False,
                console=Console(file=logs[i], width=200),
            )
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=fetch, args=(0,))
    first.start()
    while not server.requests:  # the first download holds the lock and waits on the gate
        time.sleep(0.01)
    second = threading.Thread(target=fetch, args=(1,))
    second.start()
    deadline = time.monotonic() + 10
    while "waiting for another download" not in logs[1].getvalue():
        assert time.monotonic() < deadline, "the second download did not wait for the first"
        time.sleep(0.01)
    gate.set()
    first.join(10)
    second.join(10)
    assert errors == []
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 1 and server.body_bytes == len(PAYLOAD)


def test_sha256_mismatch_raises_and_leaves_nothing(server, tmp_path, console):
    wrong = PAYLOAD[:-1] + b"X"
    server.files["f.bin"] = Served(wrong)
    dest = tmp_path / "f.bin"
    with pytest.raises(ChecksumError) as info:
        download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, console=console)
    assert isinstance(info.value, RemError)
    message = str(info.value)
    assert server.url("f.bin") in message
    assert f"expected {sha(PAYLOAD)}" in message and f"got {sha(wrong)}" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_hash_is_recorded_then_enforced(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD)
    dest = tmp_path / "f.bin"
    download(server.url("f.bin"), dest, None, progress=False, console=console)
    record = tmp_path / "f.bin.sha256"
    assert record.read_text() == f"{sha(PAYLOAD)}  f.bin\n"
    log = console.file.getvalue()
    assert "no published sha256" in log and sha(PAYLOAD) in log and "trust on first use" in log

    # The upstream file changes: the recorded hash now rejects it and says how to accept it.
    server.files["f.bin"] = Served(b"changed upstream")
    with pytest.raises(ChecksumError, match=r"recorded in .*f\.bin\.sha256") as info:
        download(server.url("f.bin"), dest, None, progress=False, force=True, console=console)
    assert f"expected {sha(PAYLOAD)}" in str(info.value)
    assert dest.read_bytes() == PAYLOAD  # the verified file is left alone


def test_existing_file_matching_its_hash_needs_no_network(server, tmp_path, console):
    dest = tmp_path / "f.bin"
    dest.write_bytes(PAYLOAD)
    download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, console=console)
    assert server.requests == []


def test_existing_file_with_wrong_hash_is_replaced(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD)
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old corrupt copy")
    download(server.url("f.bin"), dest, sha(PAYLOAD), progress=False, console=console)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_verified_without_refetching(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD)
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download(server.url("f.bin"), tmp_path / "f.bin", sha(PAYLOAD), progress=False, console=console)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert server.body_bytes == 0


def test_expected_size_and_md5_are_checked(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD)
    with pytest.raises(DownloadError, match=f"server reports {len(PAYLOAD)} bytes, expected 10"):
        download(
            server.url("f.bin"),
            tmp_path / "a",
            None,
            expected_size=10,
            progress=False,
            console=console,
        )
    with pytest.raises(
        ChecksumError, match="md5 mismatch: expected 0{32}, got " + hashlib.md5(PAYLOAD).hexdigest()
    ):
        download(
            server.url("f.bin"), tmp_path / "b", None, md5="0" * 32, progress=False, console=console
        )
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.sha256").exists()
    download(
        server.url("f.bin"),
        tmp_path / "c",
        None,
        md5=hashlib.md5(PAYLOAD).hexdigest(),
        expected_size=len(PAYLOAD),
        progress=False,
        console=console,
    )
    assert (tmp_path / "c").read_bytes() == PAYLOAD


def test_http_404_is_one_line_and_not_retried(server, tmp_path, console):
    with pytest.raises(DownloadError) as info:
        download(server.url("absent.bin"), tmp_path / "x", None, progress=False, console=console)
    assert str(info.value) == f"{server.url('absent.bin')}: HTTP 404 Not Found"
    assert len(server.requests) == 1


def test_server_errors_are_retried(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD, status=503)
    with pytest.raises(DownloadError, match="download failed after 3 attempts: HTTP 503"):
        download(
            server.url("f.bin"), tmp_path / "x", None, progress=False, retries=2, console=console
        )
    assert len(server.requests) == 3


def test_unreachable_server_is_a_clear_error(tmp_path, console):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach server") as info:
        download(
            f"http://127.0.0.1:{port}/f.bin",
            tmp_path / "x",
            None,
            progress=False,
            retries=1,
            console=console,
        )
    assert "\n" not in str(info.value)


def test_stalled_server_times_out(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD, stall=True)
    with pytest.raises(DownloadError, match=r"timed out after 0.3s"):
        download(
            server.url("f.bin"),
            tmp_path / "x",
            None,
            progress=False,
            timeout=0.3,
            retries=0,
            console=console,
        )


def test_progress_bar_renders_to_the_console(server, tmp_path, console):
    server.files["f.bin"] = Served(PAYLOAD)
    download(server.url("f.bin"), tmp_path / "f.bin", sha(PAYLOAD), progress=True, console=console)
    assert "f.bin" in console.file.getvalue() and "1.0 MB" in console.file.getvalue()


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "c"))
    assert dl.cache_dir("weights") == tmp_path / "c" / "weights"
    assert (tmp_path / "c" / "weights").is_dir()
    monkeypatch.delenv("REM_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dl.cache_dir("downloads") == tmp_path / "home" / ".cache" / "rem" / "downloads"


# --- archives ---------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extract_zip_merges_into_existing_layout(tmp_path):
    archive = _zip(
        tmp_path / "a.zip",
        {
            "annotations/instances_val2017.json": b'{"images": []}',
            "annotations/captions_val2017.json": b"{}",
            "README": b"hi",
        },
    )
    dest = tmp_path / "coco"
    (dest / "annotations").mkdir(parents=True)
    (dest / "annotations" / "instances_valrem.json").write_bytes(b"keep me")
    (dest / "README").write_bytes(b"old")

    tops = dl.extract_archive(archive, dest)
    assert tops == [dest / "README", dest / "annotations"]
    assert (dest / "annotations" / "instances_val2017.json").read_bytes() == b'{"images": []}'
    assert (dest / "annotations" / "instances_valrem.json").read_bytes() == b"keep me"
    assert (dest / "README").read_bytes() == b"hi"
    assert sorted(p.name for p in dest.iterdir()) == ["README", "annotations"]  # no temp left


def test_extract_refuses_escaping_members_and_extracts_nothing(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"ok.txt": b"1", "../escape.txt": b"2"})
    dest = tmp_path / "out"
    with pytest.raises(RemError, match="escapes the destination") as info:
        dl.extract_zip(archive, dest)
    assert info.value.where == "../escape.txt"
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_extract_corrupt_archive_is_a_rem_error(tmp_path):
    good = _zip(tmp_path / "a.zip", {"x.json": b"0123456789" * 100})
    data = bytearray(good.read_bytes())
    data[40:60] = b"\0" * 20  # inside the member's compressed data: CRC check fails
    good.write_bytes(bytes(data))
    with pytest.raises(RemError, match="corrupt zip archive"):
        dl.extract_zip(good, tmp_path / "out")
    assert not (tmp_path / "out" / "x.json").exists()
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(RemError, match="not a zip or tar archive"):
        dl.extract_archive(tmp_path / "plain.txt", tmp_path / "out")


def test_extract_tgz_layout(tmp_path):
    archive = tmp_path / "benchmark.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, data in {
            "benchmark_RELEASE/dataset/train.txt": b"2008_000002\n",
            "benchmark_RELEASE/dataset/inst/2008_000002.mat": b"mat",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    dl.extract_archive(archive, tmp_path / "voc")
    base = tmp_path / "voc" / "benchmark_RELEASE" / "dataset"
    assert (base / "train.txt").read_bytes() == b"2008_000002\n"
    assert (base / "inst" / "2008_000002.mat").read_bytes() == b"mat"
    assert [p.name for p in (tmp_path / "voc").iterdir()] == ["benchmark_RELEASE"]


def test_tar_with_link_outside_is_refused(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(RemError, match="unsafe tar member"):
        dl.extract_tar(archive, tmp_path / "out")
    assert not os.path.lexists(tmp_path / "out" / "link")
