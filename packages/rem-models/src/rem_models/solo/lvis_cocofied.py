"""LVIS restricted to the 80 COCO categories ("COCOfied"), for AggMask's AP* evaluation.

AggMask reports mask AP* on LVIS val (v0.5) COCOfied: LVIS annotations of the synsets that
have a COCO counterpart, relabelled with the COCO category ids, evaluated with LVIS's federated
protocol. Predictions of a COCO model (COCO category ids) then score directly with
``rem eval lvis_val_cocofied.json results.json --lvis``. The synset table is LVIS's own COCO
mapping (lvis-api ``data/coco_to_synset.json``), the one detectron2's
``prepare_cocofied_lvis.py`` uses; the conversion follows that script: kept annotations are
renumbered from 1, each image's ``neg_category_ids`` / ``not_exhaustive_category_ids`` are
mapped the same way, and a COCO category is listed when any annotation or image list uses it.
"""

from __future__ import annotations

import copy
from typing import Any

from rem_core.errors import RemError

# (LVIS synset, COCO category id) for the 80 COCO categories.
COCO_SYNSETS: tuple[tuple[str, int], ...] = (
    ("person.n.01", 1),
    ("bicycle.n.01", 2),
    ("car.n.01", 3),
    ("motorcycle.n.01", 4),
    ("airplane.n.01", 5),
    ("bus.n.01", 6),
    ("train.n.01", 7),
    ("truck.n.01", 8),
    ("boat.n.01", 9),
    ("traffic_light.n.01", 10),
    ("fireplug.n.01", 11),
    ("stop_sign.n.01", 13),
    ("parking_meter.n.01", 14),
    ("bench.n.01", 15),
    ("bird.n.01", 16),
    ("cat.n.01", 17),
    ("dog.n.01", 18),
    ("horse.n.01", 19),
    ("sheep.n.01", 20),
    ("beef.n.01", 21),
    ("elephant.n.01", 22),
    ("bear.n.01", 23),
    ("zebra.n.01", 24),
    ("giraffe.n.01", 25),
    ("backpack.n.01", 27),
    ("umbrella.n.01", 28),
    ("bag.n.04", 31),
    ("necktie.n.01", 32),
    ("bag.n.06", 33),
    ("frisbee.n.01", 34),
    ("ski.n.01", 35),
    ("snowboard.n.01", 36),
    ("ball.n.06", 37),
    ("kite.n.03", 38),
    ("baseball_bat.n.01", 39),
    ("baseball_glove.n.01", 40),
    ("skateboard.n.01", 41),
    ("surfboard.n.01", 42),
    ("tennis_racket.n.01", 43),
    ("bottle.n.01", 44),
    ("wineglass.n.01", 46),
    ("cup.n.01", 47),
    ("fork.n.01", 48),
    ("knife.n.01", 49),
    ("spoon.n.01", 50),
    ("bowl.n.03", 51),
    ("banana.n.02", 52),
    ("apple.n.01", 53),
    ("sandwich.n.01", 54),
    ("orange.n.01", 55),
    ("broccoli.n.01", 56),
    ("carrot.n.01", 57),
    ("frank.n.02", 58),
    ("pizza.n.01", 59),
    ("doughnut.n.02", 60),
    ("cake.n.03", 61),
    ("chair.n.01", 62),
    ("sofa.n.01", 63),
    ("pot.n.04", 64),
    ("bed.n.01", 65),
    ("dining_table.n.01", 67),
    ("toilet.n.02", 70),
    ("television_receiver.n.01", 72),
    ("laptop.n.01", 73),
    ("mouse.n.04", 74),
    ("remote_control.n.01", 75),
    ("computer_keyboard.n.01", 76),
    ("cellular_telephone.n.01", 77),
    ("microwave.n.02", 78),
    ("oven.n.01", 79),
    ("toaster.n.02", 80),
    ("sink.n.01", 81),
    ("electric_refrigerator.n.01", 82),
    ("book.n.01", 84),
    ("clock.n.01", 85),
    ("vase.n.01", 86),
    ("scissors.n.01", 87),
    ("teddy.n.01", 88),
    ("hand_blower.n.01", 89),
    ("toothbrush.n.01", 90),
)


def cocofy_lvis(lvis: dict[str, Any]) -> dict[str, Any]:
    """A COCOfied copy of an LVIS dataset dict (the input is not modified).

    Raises :class:`RemError` for a category without ``synset`` or an annotation / image list
    naming an unknown category.
    """
    to_coco = dict(COCO_SYNSETS)
    synset_of: dict[int, str] = {}
    for i, cat in enumerate(lvis.get("categories", [])):
        if "synset" not in cat:
            raise RemError("an LVIS category needs a 'synset'", where=f"categories[{i}]")
        synset_of[int(cat["id"])] = cat["synset"]

    def coco_id(lvis_id: int, where: str) -> int | None:
        if lvis_id not in synset_of:
            raise RemError(f"unknown category id {lvis_id}", where=where)
        return to_coco.get(synset_of[lvis_id])

    used: set[int] = set()
    annotations = []
    for i, ann in enumerate(lvis.get("annotations", [])):
        target = coco_id(int(ann["category_id"]), f"annotations[{i}].category_id")
        if target is None:
            continue
        kept = copy.deepcopy(ann)
        kept["category_id"] = target
        kept["id"] = len(annotations) + 1
        annotations.append(kept)
        used.add(target)
    images = []
    for i, image in enumerate(lvis.get("images", [])):
        kept = copy.deepcopy(image)
        for key in ("not_exhaustive_category_ids", "neg_category_ids"):
            mapped = [coco_id(int(c), f"images[{i}].{key}") for c in image.get(key, [])]
            kept[key] = [c for c in mapped if c is not None]
            used.update(kept[key])
        images.append(kept)
    categories = []
    for cat in lvis.get("categories", []):
        target = to_coco.get(cat["synset"])
        if target is not None and target in used:
            categories.append({**copy.deepcopy(cat), "id": target})
    out = {
        k: copy.deepcopy(v)
        for k, v in lvis.items()
        if k not in ("annotations", "images", "categories")
    }
    out.update(images=images, annotations=annotations, categories=categories)
    return out
