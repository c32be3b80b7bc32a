"""Typed errors. Each one names the file and, where it applies, the position in it.

Every error the library raises on bad input derives from :class:`ActionFusionError`,
so a batch job can catch that one type, record the sample and go on.
"""

from __future__ import annotations

import os
from typing import Optional


class ActionFusionError(Exception):
    """Base class of every error raised by actionfusion on bad input or state."""


class FileFormatError(ActionFusionError, ValueError):
    """A file does not follow its format.

    Attributes:
        path: the file.
        line: 1-based line number (text formats), or ``None``.
        where: free-form position (a frame index, a key), or ``None``.
        reason: what was wrong.
    """

    def __init__(
        self,
        path: "os.PathLike[str] | str",
        reason: str,
        *,
        line: Optional[int] = None,
        where: Optional[str] = None,
    ) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.line = line
        self.where = where
        position = ""
        if line is not None:
            position = f", line {line}"
        if where is not None:
            position += f", {where}"
        super().__init__(f"{self.path}{position}: {reason}")


class SkeletonFormatError(FileFormatError):
    """A `.skeleton` file (or another skeleton format) is malformed."""


class DepthFormatError(FileFormatError):
    """A depth map cannot be read, or is not 16-bit greyscale."""


class VideoDecodeError(FileFormatError):
    """A video cannot be opened or decoded."""


class AnnotationFormatError(FileFormatError):
    """A label, split or annotation file (PKU-MMD, NW-UCLA, pyskl) is malformed."""


class SampleNameError(ActionFusionError, ValueError):
    """A string is not an NTU sample name `SsssCcccPpppRrrrAaaa`."""


class StoreError(ActionFusionError):
    """The prepared sample store is missing, inconsistent, or lacks a sample or modality."""


class UnsafeLoadError(ActionFusionError):
    """Loading this file would run code (a pickle) and the caller did not opt in."""
