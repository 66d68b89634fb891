"""Fetch files over HTTP(S): resumable, checksum-verified, renamed into place atomically.

Used for dataset annotations (rem datasets) and model weights (rem-refine, rem-models). Bytes
stream into ``DEST.part``; an interrupted download resumes from there with an HTTP Range request
(a server that ignores Range makes it start over). Only a file whose sha256 matches is renamed to
``DEST``. Where no sha256 is published the first download's hash is recorded in ``DEST.sha256``
and enforced from then on (trust on first use), and the console says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from rem_core import __version__
from rem_core.atomic import atomic_write_text
from rem_core.errors import RemError

CHUNK_SIZE = 1 << 20
DEFAULT_TIMEOUT_S = 60.0
USER_AGENT = f"rem/{__version__} (+urllib)"
# Server-side trouble worth another try (resuming from the .part); 4xx other than these won't heal.
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RemError):
    """The file could not be fetched (network, HTTP status, truncated transfer)."""


class ChecksumError(RemError):
    """The fetched bytes are not the expected ones; nothing is left at the destination."""


class _Retryable(Exception):
    """A transient failure inside one attempt; the caller retries, resuming from the .part."""


def cache_dir(kind: str) -> Path:
    """``$REM_CACHE_DIR/<kind>`` (default ``$XDG_CACHE_HOME/rem`` or ``~/.cache/rem``), created."""
    base = os.environ.get("REM_CACHE_DIR")
    if base:
        root = Path(base).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "rem"
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks so multi-GB archives need no memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def checksum_record(dest: Path) -> Path:
    """Where the trust-on-first-use sha256 of ``dest`` is kept (``sha256sum`` format)."""
    return dest.with_name(dest.name + ".sha256")


def _read_record(record: Path) -> str | None:
    if not record.is_file():
        return None
    fields = record.read_text(encoding="utf-8").split()
    if not fields or not re.fullmatch(r"[0-9a-f]{64}", fields[0].lower()):
        raise RemError("not a sha256 record (expected '<64 hex digits>  <name>')", path=record)
    return fields[0].lower()


def _say(console: Console, message: str) -> None:
    """One log line on the console, never re-wrapped (paths and hashes stay copyable)."""
    console.print(message, soft_wrap=True, highlight=False, markup=False)


@contextlib.contextmanager
def _folder_lock(folder: Path, console: Console) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so parallel processes do not fill one ``.part``.

    A folder lock leaves no lock file behind; on systems without ``flock`` it is a no-op.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(console, f"waiting for another download into {folder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def download(
    url: str,
    dest: str | Path,
    sha256: str | None,
    *,
    progress: bool = True,
    expected_size: int | None = None,
    md5: str | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = 3,
    console: Console | None = None,
) -> Path:
    """Make ``dest`` hold the file at ``url`` and return ``dest``.

    An existing ``dest`` that matches the expected hash (published ``sha256``, else the recorded
    one) is kept without touching the network; ``force`` fetches anyway. ``md5`` is checked too
    where only an md5 is published. Transient failures are retried ``retries`` times with
    back-off, each retry resuming the ``.part``; a final failure keeps the ``.part`` so the next
    call resumes. Raises :class:`DownloadError` or :class:`ChecksumError` (both ``RemError``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    with _folder_lock(dest.parent, console):
        return _download_locked(
            url,
            dest,
            sha256,
            progress=progress,
            expected_size=expected_size,
            md5=md5,
            force=force,
            timeout=timeout,
            retries=retries,
            console=console,
        )


def _download_locked(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    progress: bool,
    expected_size: int | None,
    md5: str | None,
    force: bool,
    timeout: float,
    retries: int,
    console: Console,
) -> Path:
    record = checksum_record(dest)
    recorded = None if sha256 else _read_record(record)
    expected = sha256.lower() if sha256 else recorded

    if dest.is_file() and not force:
        if expected is None or file_digest(dest) == expected:
            return dest
        _say(console, f"{dest} does not match its expected sha256; downloading it again")

    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch(
                url,
                part,
                timeout=timeout,
                expected_size=expected_size,
                progress=progress,
                console=console,
            )
            break
        except OSError as exc:  # network errors are handled inside; this is the local disk
            raise RemError(f"cannot write: {exc.strerror or exc}", path=part) from None
        except _Retryable as exc:
            attempt += 1
            if attempt > retries:
                kept = (
                    f"; {part.stat().st_size} bytes kept in {part}, run again to resume"
                    if (part.is_file() and part.stat().st_size)
                    else ""
                )
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise DownloadError(f"download failed{tries}: {exc}{kept}", path=url) from None
            wait = min(2.0 ** (attempt - 1), 30.0)
            _say(console, f"{url}: {exc}; retrying in {wait:.0f}s")
            time.sleep(wait)

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise ChecksumError(f"size mismatch: expected {expected_size} bytes, got {size}", path=url)
    got = file_digest(part)
    if expected is not None and got != expected:
        part.unlink()
        how = ""
        if not sha256:
            how = (
                f" (recorded in {record} on first download; delete that file to accept the new one)"
            )
        raise ChecksumError(f"sha256 mismatch: expected {expected}, got {got}{how}", path=url)
    if md5 is not None and (got_md5 := file_digest(part, "md5")) != md5.lower():
        part.unlink()
        raise ChecksumError(f"md5 mismatch: expected {md5.lower()}, got {got_md5}", path=url)
    os.replace(part, dest)
    if expected is None:
        atomic_write_text(record, f"{got}  {dest.name}\n")
        _say(
            console,
            f"no published sha256 for {url}: computed {got}, recorded in {record} "
            "(trust on first use: later downloads must match it)",
        )
    return dest


def _fetch(
    url: str,
    part: Path,
    *,
    timeout: float,
    expected_size: int | None,
    progress: bool,
    console: Console,
) -> None:
    """One attempt: continue ``part`` from its current size to the end of the remote file."""
    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None:
        if offset == expected_size:
            return  # a previous attempt finished the transfer but not the verification
        if offset > expected_size:
            part.unlink()
            offset = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Nothing after `offset`: either the .part is already whole or it is longer than the
            # file (a changed upstream); only the hash check can tell, so a whole file passes on.
            total = _content_range(exc.headers.get("Content-Range", ""))[2]
            if total == offset:
                return
            part.unlink()
            _say(console, f"{url}: server rejected the resume range; starting over")
            return _fetch(
                url,
                part,
                timeout=timeout,
                expected_size=expected_size,
                progress=progress,
                console=console,
            )
        message = f"HTTP {exc.code} {exc.reason}"
        if exc.code in _RETRY_STATUS:
            raise _Retryable(message) from None
        raise DownloadError(message, path=url) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise _Retryable(f"timed out after {timeout:g}s") from None
        if isinstance(reason, str) or not isinstance(reason, OSError):
            raise DownloadError(f"cannot open: {reason}", path=url) from None
        raise _Retryable(f"cannot reach server: {reason.strerror or reason}") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Retryable(_describe(exc, timeout)) from None
    except ValueError as exc:  # malformed URL
        raise DownloadError(f"invalid URL: {exc}", path=url) from None

    with response:
        length = response.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        if offset and response.status == 206:
            start, _, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()  # the retry starts from zero rather than trust this server's ranges
                raise _Retryable(f"server resumed at byte {start}, not {offset}")
            mode = "ab"
        else:
            if offset:
                _say(console, f"{url}: server does not support resuming; starting over")
            offset, mode = 0, "wb"
            total = remaining
        if total is not None and expected_size is not None and total != expected_size:
            raise DownloadError(f"server reports {total} bytes, expected {expected_size}", path=url)
        received = _stream(
            response, part, mode, offset, total or expected_size, progress, console, timeout
        )
    if remaining is not None and received < remaining:
        raise _Retryable(
            f"connection closed after {offset + received} of {offset + remaining} bytes"
        )


def _stream(
    response,
    part: Path,
    mode: str,
    offset: int,
    total: int | None,
    progress: bool,
    console: Console,
    timeout: float,
) -> int:
    """Copy the response body to the end of ``part``; returns the number of bytes received."""
    received = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with (
        Progress(*columns, console=console, disable=not progress, transient=False) as bar,
        open(part, mode) as f,
    ):
        task = bar.add_task(part.name.removesuffix(".part"), total=total, completed=offset)
        while True:
            try:
                chunk = response.read(CHUNK_SIZE)
            except (OSError, http.client.HTTPException) as exc:
                f.flush()
                raise _Retryable(_describe(exc, timeout)) from None
            if not chunk:
                break
            f.write(chunk)
            received += len(chunk)
            bar.advance(task, len(chunk))
        f.flush()
        os.fsync(f.fileno())
    return received


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _content_range(value: str) -> tuple[int | None, int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` into (start, end, total)."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None, None
    start, end, total = (None if g in (None, "*") else int(g) for g in match.groups())
    return start, end, total


# --- archives ---------------------------------------------------------------------------------


def extract_archive(archive: str | Path, dest_dir: str | Path) -> list[Path]:
    """Unpack a zip or tar (optionally gzip/bz2/xz) archive into ``dest_dir``.

    Members are extracted into a temporary folder inside ``dest_dir`` (same filesystem), then
    renamed into place: a top-level entry that does not exist yet appears in one rename, folders
    that already exist are merged file by file, so a reader never sees a half-written file and an
    interrupted extraction leaves no partial tree. Members with absolute paths or ``..`` are
    refused. Returns the top-level paths the archive produced.
    """
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        return extract_zip(archive, dest_dir)
    if tarfile.is_tarfile(archive):
        return extract_tar(archive, dest_dir)
    raise RemError("not a zip or tar archive", path=archive)


def extract_zip(archive: str | Path, dest_dir: str | Path) -> list[Path]:
    """Unpack a zip archive into ``dest_dir`` atomically (see :func:`extract_archive`)."""
    archive = Path(archive)

    def unpack(tmp: Path) -> None:
        try:
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(archive, name)
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise RemError(f"corrupt zip archive: {exc}", path=archive) from None

    return _extract_via_temp(archive, Path(dest_dir), unpack)


def extract_tar(archive: str | Path, dest_dir: str | Path) -> list[Path]:
    """Unpack a tar archive into ``dest_dir`` atomically (see :func:`extract_archive`)."""
    archive = Path(archive)

    def unpack(tmp: Path) -> None:
        try:
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_member(archive, member.name)
                # The "data" filter also refuses links pointing outside and device files.
                tf.extractall(tmp, filter="data")
        except tarfile.FilterError as exc:
            raise RemError(f"unsafe tar member: {exc}", path=archive) from None
        except (tarfile.TarError, EOFError) as exc:
            raise RemError(f"corrupt tar archive: {exc}", path=archive) from None

    return _extract_via_temp(archive, Path(dest_dir), unpack)


def _check_member(archive: Path, name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
        raise RemError("archive member escapes the destination folder", path=archive, where=name)


def _extract_via_temp(archive: Path, dest_dir: Path, unpack) -> list[Path]:
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=f".{archive.name}.extract-"))
    try:
        unpack(tmp)
        tops = sorted(tmp.iterdir())
        for entry in tops:
            _merge(entry, dest_dir / entry.name)
        return [dest_dir / entry.name for entry in tops]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _merge(src: Path, target: Path) -> None:
    """Move ``src`` to ``target``: whole when absent, else folder by folder, file by file."""
    if not target.exists() and not target.is_symlink():
        os.replace(src, target)
    elif src.is_dir() and target.is_dir():
        for child in sorted(src.iterdir()):
            _merge(child, target / child.name)
    elif not src.is_dir() and not target.is_dir():
        os.replace(src, target)
    else:
        kind = "folder" if src.is_dir() else "file"
        raise RemError(
            f"archive holds a {kind} where a {'file' if kind == 'folder' else 'folder'}"
            " already exists",
            path=target,
        )
