"""The command line's error boundary: every expected failure becomes one line on stderr.

Exit statuses:

- 0: done;
- 1: a failure of the job (bad or missing input, a damaged store, non-finite numbers, an output
  that cannot be written);
- 2: a usage error (an unknown or mistyped config key, an option value out of range, an unknown
  model, transform or objective name, a pickle given without its opt-in flag); argparse uses 2 for
  its own usage errors too;
- 3: a batch job finished but some samples failed and ``--strict`` was given;
- 130: interrupted (Ctrl-C).

The line reads ``actionfusion COMMAND: error: WHAT (WHERE): WHAT TO DO``. Tracebacks appear only with
``--debug`` or for an exception that no bad input should cause: that is a bug in actionfusion,
and the line says so and asks for a report, after the traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import traceback
from typing import Callable, NoReturn, TextIO

from ..errors import ActionFusionError, one_line

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_OS_ADVICE = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check its permissions, or choose another location",
    errno.EPERM: "check its permissions, or choose another location",
    errno.EROFS: "the file system is read-only: choose another location",
    errno.EEXIST: "it exists already: remove it or choose another name",
    errno.EISDIR: "a directory is in the way: give a file path",
    errno.ENOTDIR: "a file is in the way where a directory is needed",
    errno.ENOSPC: "the disk is full: free space and rerun (finished work is kept)",
    errno.ENAMETOOLONG: "shorten the path",
}


def is_usage_error(error: BaseException) -> bool:
    """Usage errors: the user asked for something that does not exist or is out of range."""
    from ..errors import UnsafeLoadError, UsageError
    from .config_source import ConfigError

    return isinstance(error, (UsageError, ConfigError, UnsafeLoadError))


def os_error_line(error: OSError) -> str:
    """``"PATH: reason: advice"`` for an OSError."""
    where = error.filename if error.filename is not None else ""
    if error.filename2 is not None:
        where = f"{where} -> {error.filename2}"
    reason = error.strerror or str(error)
    advice = _OS_ADVICE.get(error.errno or -1, "")
    parts = [p for p in (str(where), reason, advice) if p]
    return ": ".join(parts)


def run_with_error_boundary(command: str, handler: Callable[[], int], debug: bool = False,
                            stream: TextIO | None = None) -> int:
    """Run ``handler()``; turn expected failures into one line on ``stream`` and an exit status."""
    stream = stream if stream is not None else sys.stderr
    prefix = f"actionfusion {command}: error:"
    try:
        return handler()
    except KeyboardInterrupt:
        print(f"actionfusion {command}: interrupted; rerun the same command to resume", file=stream)
        return EXIT_INTERRUPTED
    except ActionFusionError as error:
        if debug:
            traceback.print_exc(file=stream)
        print(f"{prefix} {one_line(str(error))}", file=stream)
        logging.getLogger("actionfusion").debug("command failed", exc_info=True)
        return EXIT_USAGE if is_usage_error(error) else EXIT_FAILURE
    except OSError as error:
        if debug:
            traceback.print_exc(file=stream)
        print(f"{prefix} {one_line(os_error_line(error))}", file=stream)
        return EXIT_FAILURE
    except MemoryError:
        if debug:
            traceback.print_exc(file=stream)
        print(f"{prefix} out of memory: lower the batch size, workers or the sizes asked for", file=stream)
        return EXIT_FAILURE
    except Exception as error:  # a bug: no bad input should reach here
        traceback.print_exc(file=stream)
        print(f"{prefix} internal error ({type(error).__name__}: {one_line(error, 300)}). "
              "This is a bug in actionfusion: please report it, with the traceback above and the command, "
              "to the project's issue tracker",
              file=stream)
        return EXIT_FAILURE


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless its text already names one, the default is
    unset (None) or the option is a flag."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text.lower() or action.default is None or action.default is argparse.SUPPRESS
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))):
            return text
        return super()._get_help_string(action) or text


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (``PROG: error: WHAT (see PROG --help)``), exit 2.

    Subcommand parsers made by ``add_subparsers`` are of the same class. Help shows every option's
    default."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def add_debug_option(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """``--debug`` on a parser; subcommands take it too (``actionfusion train cfg --debug``)."""
    parser.add_argument("--debug", action="store_true", default=False if top_level else argparse.SUPPRESS,
                        help="show the traceback of an error")
