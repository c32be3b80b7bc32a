"""Typed errors. Each one names the file and, where it applies, the position in it.

Every error the library raises on bad input derives from :class:`ActionFusionError`,
so a batch job can catch that one type, record the sample and go on.
"""

from __future__ import annotations

import os
from typing import Optional


def one_line(text: object, limit: Optional[int] = None) -> str:
    """``text`` (an error or message) on one line: its lines joined by ``"; "``, runs of whitespace
    collapsed, cut to ``limit`` characters when given. Error messages of other libraries span lines;
    ours are one line."""
    lines = (" ".join(line.split()) for line in str(text).splitlines())
    flat = "; ".join(line for line in lines if line)
    return flat if limit is None or len(flat) <= limit else flat[: max(limit - 3, 0)] + "..."


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


class CheckpointError(FileFormatError):
    """A weights or checkpoint file is damaged, or does not fit the model it is loaded into."""


class AnnotationFormatError(FileFormatError):
    """A label, split or annotation file (PKU-MMD, NW-UCLA, pyskl) is malformed."""


class SampleNameError(ActionFusionError, ValueError):
    """A string is not an NTU sample name `SsssCcccPpppRrrrAaaa`."""


class UnsafePathError(ActionFusionError, ValueError):
    """A name read from a file (a sample name, a pyskl ``frame_dir``) is not one plain path
    component: joining it to an output folder could write elsewhere."""


class UsageError(ActionFusionError, ValueError):
    """The user asked for something that does not exist or is out of range: an unknown model,
    transform or objective name, an option value beyond its bound. The CLI exits with status 2."""


class UnknownNameError(UsageError, KeyError):
    """A registered name (model, head, fusion, objective, transform) that does not exist, or a
    keyword its builder does not take (``keyword`` True); the message lists the allowed ones."""

    def __init__(self, message: str, keyword: bool = False) -> None:
        super().__init__(message)
        self.keyword = keyword

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(UsageError, ImportError):
    """An optional package a chosen feature needs is not installed; the message gives the install
    command (exit status 2 on the command line)."""


class WorkDirError(UsageError, FileExistsError):
    """An output folder holds a finished or unfinished run that the command would overwrite."""


class StoreError(ActionFusionError):
    """The prepared sample store is missing, inconsistent, or lacks a sample or modality."""


class LongTailSplitError(UsageError):
    """A long-tailed split asks for more training samples of a class than the store holds (or its
    imbalance factor or ``n_max`` is out of range); the message names the class and the way out."""


class UnsafeLoadError(ActionFusionError):
    """Loading this file would run code (a pickle) and the caller did not opt in."""


class NonFiniteError(ActionFusionError, FloatingPointError):
    """A loss, a statistic or an input became NaN or infinite; names the batch's samples."""


class RayClusterError(ActionFusionError):
    """The Ray cluster a ``--ray`` run asked for cannot be reached, lacks the resources asked for,
    or a node cannot see the files every node must share; the message says what to start or mount."""


class WeightsUnavailableError(ActionFusionError):
    """Released pretrained weights cannot be downloaded (no network, the server refused); the message
    names the URL and the exact cache path where a copy fetched by hand is picked up."""
