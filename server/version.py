"""The installed llmgate's version, as its package metadata says (``pyproject.toml``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["VERSION"]

try:
    VERSION = version("llmgate")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"
