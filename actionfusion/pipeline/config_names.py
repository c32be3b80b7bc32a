"""Config names: ``synthetic/ctrgcn`` stands for ``configs/synthetic/ctrgcn.yaml`` from any directory.

Every command and :func:`~actionfusion.pipeline.config.load_config` accept, in this order:

1. a path to a YAML file, as before (``configs/synthetic/ctrgcn.yaml``, ``/tmp/my_run.yaml``);
2. a name relative to the configs folder, ``.yaml`` optional (``synthetic/ctrgcn``); a leading
   ``configs/`` is accepted too. The folder is the repository's top-level ``configs/`` in a source
   checkout (the source of truth), else the copy the wheel carries as ``actionfusion/configs``
   (read with :mod:`importlib.resources`; see ``setup.py``).

A resolved name is a plain file, so ``_base_`` (relative to the file's folder) resolves as for a
path. An installed package must be unpacked on disk (pip always does that); a zipped one has no
configs folder to resolve names in.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.resources
import os
from pathlib import Path, PurePosixPath
from typing import List, Optional, Tuple

from ..errors import UsageError
from .config_source import ConfigError, PathLike

CONFIG_SUFFIX = ".yaml"
"""Every shipped config ends with this; a name may leave it out."""


class UnknownConfigError(ConfigError, UsageError):
    """Neither a config file nor the name of a shipped config (a usage error: exit status 2)."""


def checkout_configs_root() -> Optional[Path]:
    """The repository's ``configs/`` when this package runs from a source checkout, else ``None``."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "setup.cfg").is_file() and (repo / "configs").is_dir():
        return repo / "configs"
    return None


def packaged_configs_root() -> Optional[Path]:
    """``actionfusion/configs`` of an installed wheel (an unpacked package), else ``None``."""
    root = importlib.resources.files("actionfusion") / "configs"
    return root if isinstance(root, Path) and root.is_dir() else None


def configs_root() -> Optional[Path]:
    """Where names resolve: the checkout's ``configs/`` first, else the wheel's copy."""
    return checkout_configs_root() or packaged_configs_root()


def list_config_names(pattern: Optional[str] = None) -> List[str]:
    """Sorted config names (``synthetic/ctrgcn``); ``pattern`` is shell-style (``synthetic/*``), and a
    pattern without wildcards matches the names containing it."""
    root = configs_root()
    if root is None:
        return []
    names = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob(f"*{CONFIG_SUFFIX}"))
    if pattern:
        pattern = pattern[: -len(CONFIG_SUFFIX)] if pattern.endswith(CONFIG_SUFFIX) else pattern
        if not any(ch in pattern for ch in "*?["):
            pattern = f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def config_description(name: str) -> str:
    """The first comment line of a shipped config (``""`` if it opens with none)."""
    root = configs_root()
    if root is None:
        return ""
    with open(root / f"{name}{CONFIG_SUFFIX}", "r", encoding="utf-8") as handle:
        for line in handle:
            text = line.strip()
            if text:
                return text.lstrip("#").strip() if text.startswith("#") else ""
    return ""


def _as_name(text: str) -> Optional[str]:
    """``text`` as a config name (suffix and a leading ``configs/`` dropped), or ``None`` if it cannot be one."""
    name = PurePosixPath(text.replace("\\", "/"))
    if name.is_absolute() or not name.parts or any(part in ("", ".", "..") for part in name.parts):
        return None
    if name.parts[0] == "configs" and len(name.parts) > 1:
        name = PurePosixPath(*name.parts[1:])
    text = name.as_posix()
    return text[: -len(CONFIG_SUFFIX)] if text.endswith(CONFIG_SUFFIX) else text


def close_config_names(name: str, count: int = 3) -> List[str]:
    """Up to ``count`` shipped names closest to ``name`` (whole name, or its last part alone)."""
    def score(candidate: str) -> float:
        whole = difflib.SequenceMatcher(None, name, candidate).ratio()
        last = difflib.SequenceMatcher(None, name.rsplit("/", 1)[-1], candidate.rsplit("/", 1)[-1]).ratio()
        return max(whole, 0.99 * last)

    scored: List[Tuple[float, str]] = sorted(((score(n), n) for n in list_config_names()), key=lambda s: (-s[0], s[1]))
    return [n for s, n in scored[:count] if s >= 0.6]


def resolve_config_path(config: PathLike) -> Path:
    """The YAML file that ``config`` (a path or a config name) stands for.

    Raises:
        UnknownConfigError: no such file and no shipped config of that name (one line, with the
            closest names).
    """
    path = Path(config)
    if path.is_file():
        return path
    text = os.fspath(config)
    name = _as_name(text)
    root = configs_root()
    if name is not None and root is not None:
        candidate = root / f"{name}{CONFIG_SUFFIX}"
        if candidate.is_file():
            return candidate
    close = close_config_names(name) if name is not None else []
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    where = "" if root is not None else " (this installation ships no configs folder)"
    raise UnknownConfigError(
        "config", f"{text!r} not found: neither a YAML file nor the name of a shipped config{where}{hint} "
        "(`actionfusion configs` lists the names)"
    )
