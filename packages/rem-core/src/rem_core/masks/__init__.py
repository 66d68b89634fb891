"""Mask operations bit-identical to pycocotools, plus Boundary IoU bands.

Segmentations come as COCO polygons, compressed RLE (counts str) or uncompressed RLE (counts
list); every function accepts any of the RLE forms and every RLE it returns is compressed with
``counts`` as ``str`` (JSON-ready). Masks are (H, W) arrays, boxes are XYWH in pixels.
"""

from rem_core.masks.boundary import (
    band_of_crop,
    boundary_band,
    boundary_bands,
    boundary_rle,
    boundary_rles,
    dilation_width,
)
from rem_core.masks.codec import (
    RleDict,
    counts_to_rle,
    decode,
    decode_many,
    encode,
    is_compressed,
    rle_counts,
    rle_size,
    string_to_counts,
    to_uncompressed,
)
from rem_core.masks.convert import (
    area,
    areas,
    bbox,
    bboxes,
    empty_rle,
    iou,
    merge,
    to_rle,
    to_rles,
)
from rem_core.masks.crop import (
    RunBox,
    column_major_crop,
    crop_of_runs,
    decode_box,
    encode_box,
    run_box,
)
from rem_core.masks.polygons import clean_polygons, mask_to_polygons, usable_polygons

__all__ = [
    "RleDict",
    "RunBox",
    "area",
    "areas",
    "band_of_crop",
    "bbox",
    "bboxes",
    "boundary_band",
    "boundary_bands",
    "boundary_rle",
    "boundary_rles",
    "clean_polygons",
    "column_major_crop",
    "counts_to_rle",
    "crop_of_runs",
    "decode",
    "decode_box",
    "decode_many",
    "dilation_width",
    "empty_rle",
    "encode",
    "encode_box",
    "iou",
    "is_compressed",
    "mask_to_polygons",
    "merge",
    "rle_counts",
    "rle_size",
    "run_box",
    "string_to_counts",
    "to_rle",
    "to_rles",
    "to_uncompressed",
    "usable_polygons",
]
