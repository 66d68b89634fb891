"""fetch_weights / load_weights against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rem_core.errors import RemError
from rem_models import Weights, fetch_weights
from rem_models.checkpoints import load_weights
from rem_models.weights import default_cache_path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Path, list[str]]]:
    """Serve ``tmp_path/served`` over HTTP; yields (base URL, folder, list of requested paths)."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _publish(root: Path, name: str) -> tuple[bytes, str]:
    payload = {
        "model": {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "__author__": "test",
        "matching_heuristics": True,
    }
    data = pickle.dumps(payload, protocol=4)
    (root / name).write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


def _weights(url: str, sha256: str | None) -> Weights:
    return Weights(name="toy", url=url, sha256=sha256, file_format="detectron2-pkl")


def test_fetch_verifies_and_caches(server, tmp_path):
    base, root, requests = server
    data, digest = _publish(root, "model_final_abc.pkl")
    weights = _weights(f"{base}/model_final_abc.pkl", digest)
    cache = tmp_path / "cache"

    path = fetch_weights(weights, cache, progress=False)
    assert path == default_cache_path(weights, cache)
    assert path.name == "model_final_abc.pkl"
    assert path.read_bytes() == data
    assert requests == ["/model_final_abc.pkl"]

    # A second fetch finds the verified file and does not touch the network.
    assert fetch_weights(weights, cache, progress=False) == path
    assert requests == ["/model_final_abc.pkl"]

    state = load_weights(weights, cache)
    assert torch.equal(state["fc.weight"], torch.arange(6.0).reshape(2, 3))


def test_fetch_sha256_mismatch_leaves_nothing(server, tmp_path):
    base, root, _ = server
    _, digest = _publish(root, "model_final_abc.pkl")
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    weights = _weights(f"{base}/model_final_abc.pkl", wrong)
    cache = tmp_path / "cache"
    with pytest.raises(RemError, match=f"sha256 mismatch: expected {wrong}, got {digest}"):
        fetch_weights(weights, cache, progress=False)
    dest = default_cache_path(weights, cache)
    assert not dest.exists()
    assert [p for p in dest.parent.iterdir()] == []  # no .part left behind either


def test_same_file_name_from_two_urls_does_not_collide(server, tmp_path):
    base, root, _ = server
    (root / "b").mkdir()
    (root / "l").mkdir()
    _, digest_b = _publish(root / "b", "model_final.pkl")
    (root / "l" / "model_final.pkl").write_bytes(b"other bytes")
    digest_l = hashlib.sha256(b"other bytes").hexdigest()
    cache = tmp_path / "cache"
    path_b = fetch_weights(_weights(f"{base}/b/model_final.pkl", digest_b), cache, progress=False)
    path_l = fetch_weights(_weights(f"{base}/l/model_final.pkl", digest_l), cache, progress=False)
    assert path_b != path_l
    assert path_l.read_bytes() == b"other bytes"
    assert hashlib.sha256(path_b.read_bytes()).hexdigest() == digest_b


def test_default_cache_dir_follows_rem_cache_dir(server, tmp_path, monkeypatch):
    base, root, _ = server
    _, digest = _publish(root, "w.pkl")
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "remcache"))
    path = fetch_weights(_weights(f"{base}/w.pkl", digest), progress=False)
    assert path.is_relative_to(tmp_path / "remcache" / "weights")


def test_missing_file_is_a_rem_error(server, tmp_path):
    base, _, _ = server
    with pytest.raises(RemError, match="HTTP 404"):
        fetch_weights(_weights(f"{base}/absent.pkl", "a" * 64), tmp_path, progress=False)


def test_file_url_for_local_mirrors(tmp_path):
    mirror = tmp_path / "mirror" / "model_final.pkl"
    mirror.parent.mkdir()
    data, digest = _publish(mirror.parent, mirror.name)
    weights = _weights(mirror.as_uri(), digest)
    path = fetch_weights(weights, tmp_path / "cache", progress=False)
    assert path.read_bytes() == data
    assert path != mirror
