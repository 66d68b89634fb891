"""rem-refine: the COCO-ReM annotation pipeline.

Stage 1 refines mask boundaries with SAM (`rem refine`), stage 2 merges COCO-fied LVIS into COCO
(`rem merge`), stage 3 applies reviewed manual corrections (`rem correct`, drafted by
`rem find-duplicates`). Importing this package loads nothing heavy; torch is imported only by the
stage-1 modules.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rem-refine")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"
