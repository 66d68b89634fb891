"""CIM's data plumbing: COB pickles (safely), VOC / SBD instance reading (VOC mask mAP is
rem-eval's, tested there)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from rem_core.errors import RemError
from rem_core.io import CocoFile
from rem_models.cim.cob import cob_to_proposals, paste_crop, read_cob_pickle
from rem_models.cim.proposals_io import proposal_masks
from rem_models.cim.voc import instances_from_maps, read_id_list, voc_to_coco


def _rect(h, w, x1, y1, x2, y2):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y1:y2, x1:x2] = 1
    return m


# ----------------------------------------------------------------------------------- COB


def _cob_file(path, protocol=2):
    crop = np.zeros((4, 4), np.float32)
    crop[:, :2] = 1.0  # left half of the box
    data = {
        "indexes": [12, 11],
        "boxes": [np.array([[2, 2, 10, 6], [0, 0, 4, 4]], np.float32), np.zeros((0, 4))],
        "scores": [np.array([0.9, 0.2], np.float32), np.zeros(0, np.float32)],
        "masks": [np.stack([crop, np.ones((4, 4), np.float32)]), np.zeros((0, 4, 4))],
    }
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_cob_pickle_is_read_and_pasted_into_whole_image_masks(tmp_path, protocol):
    records = read_cob_pickle(_cob_file(tmp_path / "cob.pkl", protocol))
    assert [r.image_id for r in records] == [12, 11]
    assert records[0].crops.shape == (2, 4, 4) and records[0].scores.tolist() == pytest.approx(
        [0.9, 0.2]
    )
    coco = CocoFile(
        {
            "images": [{"id": 12, "height": 8, "width": 12}, {"id": 11, "height": 5, "width": 5}],
            "annotations": [],
            "categories": [],
        }
    )
    proposals = {p.image_id: p for p in cob_to_proposals(records, coco)}
    masks = proposal_masks(proposals[12])
    # Box (2, 2)-(10, 6) is 8 wide: the left half of the crop covers columns 2..5.
    np.testing.assert_array_equal(masks[0], _rect(8, 12, 2, 2, 6, 6).astype(bool))
    np.testing.assert_array_equal(masks[1], _rect(8, 12, 0, 0, 4, 4).astype(bool))
    assert [p.score for p in proposals[12].proposals] == pytest.approx([0.9, 0.2])
    assert len(proposals[11].proposals) == 0


def test_paste_crop_clips_to_the_image():
    m = paste_crop(np.ones((3, 3), np.float32), np.array([-2, -2, 3, 3]), 4, 4)
    np.testing.assert_array_equal(m, _rect(4, 4, 0, 0, 3, 3).astype(bool))


def test_cob_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"indexes": [1], "boxes": [Evil()], "masks": [[]]}))
    with pytest.raises(RemError, match="refusing to unpickle"):
        read_cob_pickle(path)
    assert not marker.exists()


def test_cob_pickle_shape_errors_name_the_record(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(
        pickle.dumps({"ids": [1], "boxes": [np.zeros((2, 4))], "masks": [np.zeros((3, 4, 4))]})
    )
    with pytest.raises(RemError, match=r"masks\[0\].*2 boxes but masks of shape \[3, 4, 4\]"):
        read_cob_pickle(path)
    path.write_bytes(pickle.dumps({"boxes": [], "masks": []}))
    with pytest.raises(RemError, match="missing key 'ids'"):
        read_cob_pickle(path)


# ----------------------------------------------------------------------------------- VOC


def _palette_png(path, array):
    im = Image.fromarray(array.astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0] * 256)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _maps():
    inst = np.zeros((6, 8), np.uint8)
    cls = np.zeros((6, 8), np.uint8)
    inst[1:3, 1:4], cls[1:3, 1:4] = 1, 15  # a person
    inst[3:6, 4:8], cls[3:6, 4:8] = 2, 12  # a dog
    inst[3, 4], cls[3, 4] = 255, 255  # void border pixel
    return inst, cls


def test_voc_png_instances_become_coco_annotations(tmp_path):
    inst, cls = _maps()
    _palette_png(tmp_path / "SegmentationObject" / "2007_000032.png", inst)
    _palette_png(tmp_path / "SegmentationClass" / "2007_000032.png", cls)
    (tmp_path / "val.txt").write_text("2007_000032\n\n")
    data = voc_to_coco(tmp_path, read_id_list(tmp_path / "val.txt"))
    assert data["images"] == [{"id": 1, "file_name": "2007_000032.jpg", "height": 6, "width": 8}]
    assert [c["name"] for c in data["categories"]][14] == "person"
    person, dog = data["annotations"]
    assert person["category_id"] == 15 and person["area"] == 6 and person["bbox"] == [1, 1, 3, 2]
    assert dog["category_id"] == 12 and dog["area"] == 11  # 12 pixels minus the void one


def test_sbd_mat_instances(tmp_path):
    from scipy.io import savemat

    inst, cls = _maps()
    (tmp_path / "inst").mkdir()
    (tmp_path / "cls").mkdir()
    savemat(tmp_path / "inst" / "a.mat", {"GTinst": {"Segmentation": inst}})
    savemat(tmp_path / "cls" / "a.mat", {"GTcls": {"Segmentation": cls}})
    data = voc_to_coco(tmp_path, ["a"], source="sbd")
    assert [(a["category_id"], a["area"]) for a in data["annotations"]] == [(15, 6), (12, 11)]
    with pytest.raises(RemError, match="no 'GTinst' struct"):
        savemat(tmp_path / "inst" / "b.mat", {"x": inst})
        savemat(tmp_path / "cls" / "b.mat", {"GTcls": {"Segmentation": cls}})
        voc_to_coco(tmp_path, ["b"], source="sbd")


def test_instance_class_is_the_majority_class():
    inst = np.array([[1, 1, 1], [0, 0, 0]])
    cls = np.array([[3, 3, 7], [0, 0, 0]])
    [(c, m)] = instances_from_maps(inst, cls)
    assert c == 3 and m.sum() == 3
