"""rem_core.datasets and `rem datasets`: layouts, downloads from a local mirror, listing."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from local_http import LocalServer, Served

from rem_core import datasets as ds
from rem_core import download as dl
from rem_core.cli.main import cli
from rem_core.errors import RemError


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def env(server, tmp_path, monkeypatch):
    """Point downloads at the local server, the cache and the root into tmp_path."""
    monkeypatch.setenv(ds.MIRROR_ENV, server.base_url)
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(ds.ROOT_ENV, str(tmp_path / "root"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    return tmp_path / "root"


def rem(*args: str):
    return CliRunner().invoke(cli, list(args))


# --- layout -----------------------------------------------------------------------------------

# The layouts the brief and the upstream tools (detectron2, refer) use, written out by hand.
EXPECTED_LAYOUT = {
    "coco_2017_train": ("coco/annotations/instances_train2017.json", "coco/train2017"),
    "coco_2017_val": ("coco/annotations/instances_val2017.json", "coco/val2017"),
    "coco_rem_train": ("coco/annotations/instances_trainrem.json", "coco/train2017"),
    "coco_rem_val": ("coco/annotations/instances_valrem.json", "coco/val2017"),
    "lvis_v1_train": ("lvis/lvis_v1_train.json", "coco"),
    "lvis_v1_val": ("lvis/lvis_v1_val.json", "coco"),
    "refcoco_unc": ("refcoco/refs(unc).p", "coco/train2014"),
    "refcocoplus_unc": ("refcoco+/refs(unc).p", "coco/train2014"),
    "refcocog_umd": ("refcocog/refs(umd).p", "coco/train2014"),
    "voc2012_sbd": ("voc/train_aug.txt", "voc/VOCdevkit/VOC2012/JPEGImages"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_LAYOUT))
def test_resolve_gives_the_usual_layout(name, tmp_path):
    paths = ds.resolve(name, tmp_path)
    annotation, images = EXPECTED_LAYOUT[name]
    assert paths.annotation == tmp_path / annotation
    assert paths.image_dir == tmp_path / images
    assert paths.root == tmp_path


def test_registry_lists_exactly_the_known_datasets():
    assert set(ds.names()) == set(EXPECTED_LAYOUT)


def test_refer_datasets_carry_their_instances_file(tmp_path):
    paths = ds.resolve("refcocoplus_unc", tmp_path)
    assert paths.annotations == {
        "refs": tmp_path / "refcoco+/refs(unc).p",
        "instances": tmp_path / "refcoco+/instances.json",
    }


def test_root_comes_from_env_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv(ds.ROOT_ENV, str(tmp_path / "r"))
    assert (
        ds.resolve("coco_2017_val").annotation
        == tmp_path / "r/coco/annotations/instances_val2017.json"
    )
    monkeypatch.delenv(ds.ROOT_ENV)
    monkeypatch.chdir(tmp_path)
    assert ds.datasets_root() == tmp_path / "datasets"
    assert ds.datasets_root(tmp_path / "x") == tmp_path / "x"


def test_every_annotation_path_has_a_source_and_every_source_a_checksum_entry():
    for dataset in ds.DATASETS.values():
        provided = {rel for source in dataset.sources for rel in source.provides}
        wanted = set(dataset.annotations.values())
        assert wanted <= provided | set(dataset.derived), dataset.name
        assert set(dataset.derived) <= wanted, dataset.name
        for source in dataset.sources:
            assert source.filename in ds.CHECKSUMS, source.filename
            assert all(re.match(r"https?://", url) for url in source.urls)
    for name, checksum in ds.CHECKSUMS.items():
        assert checksum.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", checksum.sha256), name
        assert checksum.md5 is None or re.fullmatch(r"[0-9a-f]{32}", checksum.md5), name


def test_unknown_name_suggests_a_close_one():
    with pytest.raises(
        RemError, match="unknown dataset 'coco_2017_vall'; did you mean coco_2017_val"
    ):
        ds.resolve("coco_2017_vall")


def test_annotation_path_accepts_a_file_or_a_dataset_name(tmp_path):
    own = tmp_path / "mine.json"
    own.write_text("{}")
    assert ds.annotation_path(own) == own
    with pytest.raises(
        RemError, match=re.escape("missing coco/annotations/instances_val2017.json; run")
    ):
        ds.annotation_path("coco_2017_val", tmp_path)
    target = tmp_path / "coco/annotations/instances_val2017.json"
    target.parent.mkdir(parents=True)
    target.write_text("{}")
    assert ds.annotation_path("coco_2017_val", tmp_path) == target
    assert ds.annotation_path("no/such.json", tmp_path) == Path("no/such.json")


# --- rem datasets download --------------------------------------------------------------------

COCO_ZIP = zip_bytes(
    {
        "annotations/instances_val2017.json": b'{"images": [], "annotations": [], "categories": []}',
        "annotations/instances_train2017.json": b'{"images": [1]}',
        "annotations/captions_val2017.json": b"{}",
    }
)


def publish(monkeypatch, filename: str, data: bytes, **extra) -> None:
    """Make the checksum table hold the real sha256 of our stand-in archive."""
    digest = hashlib.sha256(data).hexdigest()
    monkeypatch.setitem(ds.CHECKSUMS, filename, ds.Checksum(sha256=digest, **extra))


def test_download_coco_end_to_end(env, server, monkeypatch):
    server.files["annotations_trainval2017.zip"] = Served(COCO_ZIP)
    publish(monkeypatch, "annotations_trainval2017.zip", COCO_ZIP, size=len(COCO_ZIP))

    result = rem("datasets", "download", "coco_2017_val", "--no-progress")
    assert result.exit_code == 0, result.output
    json_path = env / "coco/annotations/instances_val2017.json"
    assert json_path.read_bytes() == b'{"images": [], "annotations": [], "categories": []}'
    assert (env / "coco/annotations/instances_train2017.json").read_bytes() == b'{"images": [1]}'
    assert f"instances: {json_path}" in result.stdout
    assert f"put them in {env / 'coco/val2017'}" in result.stdout
    assert "http://images.cocodataset.org/zips/val2017.zip" in result.stdout
    assert server.requests == [("annotations_trainval2017.zip", None)]

    # Already unpacked: no network; train shares the archive, so it is in place as well.
    result = rem("datasets", "download", "coco_2017_val", "coco_2017_train", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "already unpacked" in result.stderr
    assert len(server.requests) == 1

    # --force fetches the archive again and unpacks it over an edited file.
    json_path.write_bytes(b"edited")
    result = rem("datasets", "download", "coco_2017_val", "--force", "--no-progress")
    assert result.exit_code == 0, result.output
    assert json_path.read_bytes().startswith(b'{"images"')
    assert server.requests[-1] == ("annotations_trainval2017.zip", None)
    assert server.body_bytes == 2 * len(COCO_ZIP)


def test_download_hash_mismatch_exits_2_and_leaves_nothing(env, server, monkeypatch, tmp_path):
    publish(monkeypatch, "annotations_trainval2017.zip", COCO_ZIP)
    tampered = zip_bytes({"annotations/instances_val2017.json": b"{}"})
    server.files["annotations_trainval2017.zip"] = Served(tampered)

    result = rem("datasets", "download", "coco_2017_val", "--no-progress")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: {server.url('annotations_trainval2017.zip')}: sha256 mismatch: expected "
        f"{hashlib.sha256(COCO_ZIP).hexdigest()}, got {hashlib.sha256(tampered).hexdigest()}"
    ]
    assert "Traceback" not in result.output
    assert not (env / "coco").exists()
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_download_unknown_hash_is_trusted_on_first_use(env, server, tmp_path):
    assert ds.CHECKSUMS["refcoco.zip"].sha256 is None  # the real table has none for refer
    archive = zip_bytes(
        {
            "refcoco/refs(unc).p": b"pickle-unc",
            "refcoco/refs(google).p": b"pickle-google",
            "refcoco/instances.json": b"{}",
        }
    )
    server.files["refcoco.zip"] = Served(archive)
    result = rem("datasets", "download", "refcoco_unc", "--no-progress")
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(archive).hexdigest()
    assert "trust on first use" in result.stderr and digest in result.stderr
    record = tmp_path / "cache" / "downloads" / "refcoco.zip.sha256"
    assert record.read_text() == f"{digest}  refcoco.zip\n"
    assert (env / "refcoco/refs(unc).p").read_bytes() == b"pickle-unc"
    assert (env / "refcoco/instances.json").read_bytes() == b"{}"

    # The recorded hash is now enforced against a changed upstream file.
    server.files["refcoco.zip"] = Served(zip_bytes({"refcoco/refs(unc).p": b"other"}))
    result = rem("datasets", "download", "refcoco_unc", "--force", "--no-progress")
    assert result.exit_code == 2
    assert f"sha256 mismatch: expected {digest}" in result.stderr
    assert "delete that file to accept the new one" in result.stderr
    assert (env / "refcoco/refs(unc).p").read_bytes() == b"pickle-unc"


def test_download_archive_without_the_expected_file_exits_2(env, server):
    server.files["instances_valrem.json.zip"] = Served(zip_bytes({"something_else.json": b"{}"}))
    result = rem("datasets", "download", "coco_rem_val", "--no-progress")
    assert result.exit_code == 2
    assert "archive did not provide coco/annotations/instances_valrem.json" in result.stderr


def test_download_coco_rem_unpacks_next_to_coco_annotations(env, server):
    server.files["instances_valrem.json.zip"] = Served(
        zip_bytes({"instances_valrem.json": b'{"rem": true}'})
    )
    result = rem("datasets", "download", "coco_rem_val")  # with the progress bar
    assert result.exit_code == 0, result.output
    assert (env / "coco/annotations/instances_valrem.json").read_bytes() == b'{"rem": true}'


def test_download_network_failure_is_one_line_exit_2(env, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(ds.MIRROR_ENV, f"http://127.0.0.1:{port}/mirror")
    result = rem("datasets", "download", "lvis_v1_val", "--no-progress")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: http://127.0.0.1:{port}/mirror/lvis_v1_val.json.zip: ")
    assert "cannot reach server" in errors[0]


def test_download_unknown_name_fails_before_any_request(env, server):
    result = rem("datasets", "download", "coco_2017_val", "lvis_v2", "--no-progress")
    assert result.exit_code == 2
    assert "unknown dataset 'lvis_v2'" in result.stderr
    assert server.requests == []


def test_source_falls_back_to_the_next_url(server, tmp_path, monkeypatch):
    monkeypatch.delenv(ds.MIRROR_ENV, raising=False)
    monkeypatch.setenv("REM_CACHE_DIR", str(tmp_path / "cache"))
    server.files["b/file.zip"] = Served(b"payload")
    source = ds.Source(
        urls=(server.url("a/file.zip"), server.url("b/file.zip")), extract_to=".", provides=()
    )
    path = ds.fetch_source(source, progress=False)
    assert path.read_bytes() == b"payload"
    assert [name for name, _ in server.requests] == ["a/file.zip", "b/file.zip"]


def test_download_voc_sbd_builds_train_aug(env, server, monkeypatch):
    voc = "VOCdevkit/VOC2012"
    voc_tar = tar_bytes(
        {
            f"{voc}/ImageSets/Segmentation/train.txt": b"f\na\n",
            f"{voc}/ImageSets/Segmentation/val.txt": b"e\ng\n",
            f"{voc}/SegmentationObject/a.png": b"png",
            f"{voc}/SegmentationClass/a.png": b"png",
            f"{voc}/JPEGImages/a.jpg": b"jpg",
        }
    )
    sbd_tgz = tar_bytes(
        {
            "benchmark_RELEASE/dataset/train.txt": b"a\nb\nc\n",
            "benchmark_RELEASE/dataset/val.txt": b"d\ne\n",
            "benchmark_RELEASE/dataset/inst/b.mat": b"mat",
            "benchmark_RELEASE/dataset/cls/b.mat": b"mat",
        },
        mode="w:gz",
    )
    server.files["VOCtrainval_11-May-2012.tar"] = Served(voc_tar)
    server.files["benchmark.tgz"] = Served(sbd_tgz)
    publish(
        monkeypatch, "VOCtrainval_11-May-2012.tar", voc_tar, md5=hashlib.md5(voc_tar).hexdigest()
    )
    monkeypatch.setitem(
        ds.CHECKSUMS,
        "benchmark.tgz",
        ds.Checksum(sha256=None, md5=hashlib.md5(sbd_tgz).hexdigest()),
    )

    result = rem("datasets", "download", "voc2012_sbd", "--no-progress")
    assert result.exit_code == 0, result.output
    # (SBD train | SBD val | VOC train) - VOC val = {a,b,c,d,e,f} - {e,g}
    assert (env / "voc/train_aug.txt").read_text() == "a\nb\nc\nd\nf\n"
    assert f"images: {env / 'voc' / voc / 'JPEGImages'}" in result.stdout
    assert ds.resolve("voc2012_sbd").missing() == []


def test_download_rejects_published_md5_mismatch(env, server, monkeypatch):
    sbd_tgz = tar_bytes({"benchmark_RELEASE/dataset/train.txt": b"a\n"}, mode="w:gz")
    server.files["benchmark.tgz"] = Served(sbd_tgz)
    server.files["VOCtrainval_11-May-2012.tar"] = Served(b"unused")
    monkeypatch.setitem(ds.CHECKSUMS, "VOCtrainval_11-May-2012.tar", ds.Checksum(sha256=None))
    monkeypatch.setitem(ds.CHECKSUMS, "benchmark.tgz", ds.Checksum(sha256=None, md5="0" * 32))
    (env / "voc/VOCdevkit/VOC2012/SegmentationObject").mkdir(parents=True)
    for rel in (
        "SegmentationObject/a.png",
        "SegmentationClass/a.png",
        "ImageSets/Segmentation/train.txt",
        "ImageSets/Segmentation/val.txt",
    ):
        (env / "voc/VOCdevkit/VOC2012" / rel).parent.mkdir(parents=True, exist_ok=True)
        (env / "voc/VOCdevkit/VOC2012" / rel).write_text("a\n")
    result = rem("datasets", "download", "voc2012_sbd", "--no-progress")
    assert result.exit_code == 2
    assert f"md5 mismatch: expected {'0' * 32}, got {hashlib.md5(sbd_tgz).hexdigest()}" in (
        result.stderr
    )
    assert [name for name, _ in server.requests] == ["benchmark.tgz"]  # VOC was in place


# --- rem datasets list / path -----------------------------------------------------------------


def statuses(output: str) -> dict[str, set[str]]:
    """Map each listed relative path to the set of statuses shown for it (one row per line)."""
    found: dict[str, set[str]] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) >= 4 and cells[2] in ("present", "missing"):
            found.setdefault(cells[3], set()).add(cells[2])
    return found


def test_list_shows_present_and_missing_files(env):
    (env / "coco/annotations").mkdir(parents=True)
    (env / "coco/annotations/instances_val2017.json").write_text("{}")
    (env / "coco/val2017").mkdir()
    (env / "coco/val2017/000000000139.jpg").write_bytes(b"jpg")
    (env / "coco/train2017").mkdir()  # empty: not present
    (env / "refcoco").mkdir()
    (env / "refcoco/refs(unc).p").write_bytes(b"p")

    result = rem("datasets", "list")
    assert result.exit_code == 0, result.output
    # The table title wraps where the terminal width says; compare it without line breaks.
    assert f"datasets under {env}" in " ".join(result.stdout.split())
    found = statuses(result.stdout)
    assert found["coco/annotations/instances_val2017.json"] == {"present"}
    assert found["coco/annotations/instances_train2017.json"] == {"missing"}
    assert found["coco/val2017/ (images)"] == {"present"}
    assert found["coco/train2017/ (images)"] == {"missing"}
    assert found["refcoco/refs(unc).p"] == {"present"}
    assert found["refcoco/instances.json"] == {"missing"}
    assert found["lvis/lvis_v1_val.json"] == {"missing"}
    expected_rows = {rel for d in ds.DATASETS.values() for rel in d.annotations.values()}
    assert expected_rows <= set(found)


def test_list_on_another_root(env, tmp_path):
    other = tmp_path / "elsewhere"
    (other / "lvis").mkdir(parents=True)
    (other / "lvis/lvis_v1_val.json").write_text("{}")
    result = rem("datasets", "list", "--root", str(other))
    assert result.exit_code == 0, result.output
    assert statuses(result.stdout)["lvis/lvis_v1_val.json"] == {"present"}


def test_path_prints_annotation_images_or_all(env):
    result = rem("datasets", "path", "coco_rem_val")
    assert result.exit_code == 0
    assert result.stdout == f"{env / 'coco/annotations/instances_valrem.json'}\n"
    assert "missing" in result.stderr
    result = rem("datasets", "path", "coco_rem_val", "--images")
    assert result.stdout == f"{env / 'coco/val2017'}\n"
    result = rem("datasets", "path", "refcocog_umd", "--all", "--root", str(env / "x"))
    assert result.stdout.splitlines() == [
        f"refs: {env / 'x/refcocog/refs(umd).p'}",
        f"instances: {env / 'x/refcocog/instances.json'}",
        f"images: {env / 'x/coco/train2014'}",
    ]
    result = rem("datasets", "path", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown dataset 'nope'")
