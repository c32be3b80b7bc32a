"""The ``--ray`` options of ``actionfusion prepare`` and ``actionfusion extract-poses``."""

from __future__ import annotations

import argparse

from ..ray_pool import ADDRESS_HELP
from .cli_types import float_in


def ray_address(text: str) -> str:
    """An argparse ``type``: ``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    value = text.strip()
    if value in ("auto", "local"):
        return value
    host, _, port = value.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto', 'local' or HOST:PORT (e.g. 10.0.0.1:6379)")
    return value


ray_address.__name__ = "Ray address"


def add_ray_arguments(parser: argparse.ArgumentParser, actors: bool = False) -> None:
    """``--ray ADDRESS`` (and, for a pose model held by actors, ``--ray-cpus-per-actor`` and
    ``--ray-gpus-per-actor``)."""
    parser.add_argument("--ray", type=ray_address, default=None, metavar="ADDRESS",
                        help=f"run on a Ray cluster instead of local processes: {ADDRESS_HELP}. The root and the "
                             "store must be at the same paths on every node (shared file system); --workers then "
                             "only sizes --ray local (default: local processes)")
    if actors:
        parser.add_argument("--ray-cpus-per-actor", type=float_in(0.0, 1024.0, low_open=True), default=1.0,
                            help="CPUs each pose-model actor reserves")
        parser.add_argument("--ray-gpus-per-actor", type=float_in(0.0, 64.0), default=0.0,
                            help="GPUs (or a fraction: 0.5 puts two actors on a GPU) each pose-model actor reserves; "
                                 "for GPU backends (--backend mmpose --device cuda); 0: CPU actors")
