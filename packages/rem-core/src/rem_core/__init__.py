"""rem-core: schemas, dataset IO, mask ops and the `rem` command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rem-core")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
