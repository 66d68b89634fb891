"""The 79 COCO-2017 <-> LVIS v1 category pairs used to merge LVIS into COCO (refine.md §2.3).

The pairs come from the COCO-to-synset table that ships with the LVIS API, resolved to LVIS v1
category ids. COCO 58 "hot dog" (synset frank.n.02) has no LVIS v1 counterpart, so hot-dog
annotations are never replaced or augmented from LVIS.

The ids are LVIS *v1* ids; LVIS v0.5 numbers its categories differently. :func:`check_lvis_categories`
catches a v0.5 (or otherwise renumbered) file through the categories' synsets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rem_core.errors import RemError

# COCO category id -> LVIS v1 category id, for the 79 mapped COCO classes.
# fmt: off
COCO_TO_LVIS: dict[int, int] = {
    1: 793, 2: 94, 3: 207, 4: 703, 5: 3, 6: 173, 7: 1115, 8: 1123, 9: 118, 10: 1112, 11: 445,
    13: 1019, 14: 766, 15: 90, 16: 99, 17: 225, 18: 378, 19: 569, 20: 943, 21: 80, 22: 422,
    23: 76, 24: 1202, 25: 496, 27: 34, 28: 1133, 31: 35, 32: 716, 33: 36, 34: 474, 35: 964,
    36: 976, 37: 41, 38: 611, 39: 58, 40: 60, 41: 962, 42: 1037, 43: 1079, 44: 133, 46: 1190,
    47: 344, 48: 469, 49: 615, 50: 1000, 51: 139, 52: 45, 53: 12, 54: 912, 55: 735, 56: 154,
    57: 217, 59: 816, 60: 387, 61: 183, 62: 232, 63: 982, 64: 837, 65: 77, 67: 367, 70: 1097,
    72: 1077, 73: 631, 74: 705, 75: 881, 76: 296, 77: 230, 78: 687, 79: 739, 80: 1095, 81: 961,
    82: 421, 84: 127, 85: 271, 86: 1139, 87: 923, 88: 1071, 89: 534, 90: 1102,
}
# fmt: on

LVIS_TO_COCO: dict[int, int] = {lvis: coco for coco, lvis in COCO_TO_LVIS.items()}
"""LVIS v1 category id -> COCO category id (the inverse of :data:`COCO_TO_LVIS`)."""

UNMAPPED_COCO: frozenset[int] = frozenset({58})
"""COCO categories with no LVIS pair: only 58 "hot dog"."""

# The WordNet synset of each mapped LVIS v1 category (the LVIS API's COCO-to-synset table). A file
# whose category with one of these ids carries another synset is not numbered like LVIS v1.
# fmt: off
LVIS_SYNSETS: dict[int, str] = {
    793: "person.n.01", 94: "bicycle.n.01", 207: "car.n.01", 703: "motorcycle.n.01",
    3: "airplane.n.01", 173: "bus.n.01", 1115: "train.n.01", 1123: "truck.n.01", 118: "boat.n.01",
    1112: "traffic_light.n.01", 445: "fireplug.n.01", 1019: "stop_sign.n.01",
    766: "parking_meter.n.01", 90: "bench.n.01", 99: "bird.n.01", 225: "cat.n.01",
    378: "dog.n.01", 569: "horse.n.01", 943: "sheep.n.01", 80: "beef.n.01", 422: "elephant.n.01",
    76: "bear.n.01", 1202: "zebra.n.01", 496: "giraffe.n.01", 34: "backpack.n.01",
    1133: "umbrella.n.01", 35: "bag.n.04", 716: "necktie.n.01", 36: "bag.n.06",
    474: "frisbee.n.01", 964: "ski.n.01", 976: "snowboard.n.01", 41: "ball.n.06",
    611: "kite.n.03", 58: "baseball_bat.n.01", 60: "baseball_glove.n.01", 962: "skateboard.n.01",
    1037: "surfboard.n.01", 1079: "tennis_racket.n.01", 133: "bottle.n.01",
    1190: "wineglass.n.01", 344: "cup.n.01", 469: "fork.n.01", 615: "knife.n.01",
    1000: "spoon.n.01", 139: "bowl.n.03", 45: "banana.n.02", 12: "apple.n.01",
    912: "sandwich.n.01", 735: "orange.n.01", 154: "broccoli.n.01", 217: "carrot.n.01",
    816: "pizza.n.01", 387: "doughnut.n.02", 183: "cake.n.03", 232: "chair.n.01",
    982: "sofa.n.01", 837: "pot.n.04", 77: "bed.n.01", 367: "dining_table.n.01",
    1097: "toilet.n.02", 1077: "television_receiver.n.01", 631: "laptop.n.01", 705: "mouse.n.04",
    881: "remote_control.n.01", 296: "computer_keyboard.n.01", 230: "cellular_telephone.n.01",
    687: "microwave.n.02", 739: "oven.n.01", 1095: "toaster.n.02", 961: "sink.n.01",
    421: "electric_refrigerator.n.01", 127: "book.n.01", 271: "clock.n.01", 1139: "vase.n.01",
    923: "scissors.n.01", 1071: "teddy.n.01", 534: "hand_blower.n.01", 1102: "toothbrush.n.01",
}
# fmt: on


def check_lvis_categories(
    categories: Iterable[Mapping[str, Any]], *, path: str | Path | None = None
) -> None:
    """Raise RemError if an LVIS category list is visibly not numbered like LVIS v1.

    Only categories that carry a ``synset`` and whose id is in :data:`LVIS_SYNSETS` are checked,
    so hand-made or trimmed files without synsets pass.
    """
    for i, cat in enumerate(categories):
        if not isinstance(cat, Mapping):
            raise RemError("expected an object", path=path, where=f"categories[{i}]")
        expected = LVIS_SYNSETS.get(cat.get("id"))  # type: ignore[arg-type]
        synset = cat.get("synset")
        if expected is not None and synset is not None and synset != expected:
            raise RemError(
                f"LVIS category {cat['id']} has synset {synset!r}, LVIS v1 has {expected!r}; "
                "the merge needs LVIS v1 annotation files (v0.5 numbers categories differently)",
                path=path,
                where=f"categories[{i}].synset",
            )
