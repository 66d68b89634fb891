"""`rem weights`: the registry, and downloads from a local HTTP server on 127.0.0.1 with sha256
checks, caching, and checkpoints that `rem refine` can then load."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rem_core.cli.main import cli
from rem_refine.sam.models import build_tiny_test, load_sam
from rem_refine.weights import WEIGHTS, cached_path, find_checkpoint


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / "www"`` on an ephemeral 127.0.0.1 port; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the CLI output clean
            pass

    handler = functools.partial(Quiet, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_registry_has_the_official_files():
    assert set(WEIGHTS) == {"sam_vit_h", "sam_vit_l", "sam_vit_b", "mobile_sam"}
    base = "https://dl.fbaipublicfiles.com/segment_anything/"
    assert WEIGHTS["sam_vit_h"].url == base + "sam_vit_h_4b8939.pth"
    assert WEIGHTS["sam_vit_l"].url == base + "sam_vit_l_0b3195.pth"
    assert WEIGHTS["sam_vit_b"].url == base + "sam_vit_b_01ec64.pth"
    assert WEIGHTS["mobile_sam"].url.endswith(
        "ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"
    )
    for info in WEIGHTS.values():
        assert info.sha256 is None or len(info.sha256) == 64
    result = CliRunner().invoke(cli, ["weights", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "sam_vit_h_4b8939.pth" in result.output


def test_download_verifies_caches_and_loads(server, tmp_path):
    www, base = server
    torch.manual_seed(0)
    torch.save(build_tiny_test().state_dict(), www / "tiny.pth")
    good = hashlib.sha256((www / "tiny.pth").read_bytes()).hexdigest()
    env = {"REM_CACHE_DIR": str(tmp_path / "cache")}
    runner = CliRunner()
    url = f"{base}/tiny.pth"

    # The registry's sha256 is the official file's: a different file is refused.
    result = runner.invoke(
        cli, ["weights", "download", "sam_vit_b", "--url", url, "--no-progress"], env=env
    )
    assert result.exit_code == 2
    assert "sha256 mismatch: expected ec2df627" in result.output
    dest = tmp_path / "cache" / "weights" / "sam_vit_b_01ec64.pth"
    assert not dest.exists()

    args = ["weights", "download", "sam_vit_b", "--url", url, "--sha256", good, "--no-progress"]
    result = runner.invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(dest) and dest.is_file()
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == good
    (www / "tiny.pth").unlink()  # cached and verified: no second request needed
    assert runner.invoke(cli, args, env=env).exit_code == 0
    assert load_sam("tiny", dest).prompt_encoder is not None


def test_refine_finds_cached_weights_by_arch(tmp_path, monkeypatch):
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    assert find_checkpoint("vit_t") is None
    path = cached_path("mobile_sam")
    path.write_bytes(b"x")
    assert find_checkpoint("vit_t") == path
    assert find_checkpoint("tiny") is None
    assert isinstance(path, Path)
