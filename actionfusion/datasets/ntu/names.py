"""NTU RGB+D sample names: ``SsssCcccPpppRrrrAaaa``.

Source: the official README (shahroudy/NTURGB-D@ac2ebc8): setup, camera (1-3),
performer, replication (1-2), action; the label is ``action - 1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import SampleNameError

_NAME_RE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")


@dataclass(frozen=True, order=True)
class SampleName:
    """One NTU sample's identity, parsed from its name."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        """0-based class label (action - 1)."""
        return self.action - 1

    def __str__(self) -> str:
        return format_sample_name(self)


def parse_sample_name(name: str) -> SampleName:
    """Parse ``"S001C002P003R002A013"`` (a bare name, a file name or a path's stem).

    Suffixes such as ``.skeleton`` or ``_rgb.avi`` and leading directories are ignored.

    Raises:
        SampleNameError: the string holds no valid name, or a field is out of range.
    """
    stem = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem.split(".", 1)[0]
    if stem.endswith("_rgb"):
        stem = stem[: -len("_rgb")]
    match = _NAME_RE.match(stem)
    if match is None:
        raise SampleNameError(
            f"{name!r} is not an NTU sample name of the form SsssCcccPpppRrrrAaaa (e.g. S001C002P003R002A013)"
        )
    setup, camera, performer, replication, action = (int(g) for g in match.groups())
    for field_name, value in (("setup", setup), ("camera", camera), ("performer", performer),
                              ("replication", replication), ("action", action)):
        if value == 0:
            raise SampleNameError(f"{name!r}: {field_name} is 0; NTU numbers every field from 1")
    return SampleName(setup, camera, performer, replication, action)


def format_sample_name(sample: SampleName) -> str:
    """The inverse of :func:`parse_sample_name`."""
    fields = (sample.setup, sample.camera, sample.performer, sample.replication, sample.action)
    if any(not (1 <= v <= 999) for v in fields):
        raise SampleNameError(f"every field of {sample!r} must lie in 1..999")
    return "S{:03d}C{:03d}P{:03d}R{:03d}A{:03d}".format(*fields)
