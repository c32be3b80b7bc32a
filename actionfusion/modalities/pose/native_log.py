"""Keep the native libraries' start-up chatter (absl/glog, TFLite) off the console.

mediapipe's C++ core logs through absl before any log configuration exists, straight to file
descriptor 2: every new graph prints lines such as ``W0000 ... inference_feedback_manager.cc:114]
Feedback manager requires ...`` and ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU``.
Environment variables (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL``) do not reach that logger
in mediapipe 0.10.14 (tried). :func:`quiet_native_stderr` therefore points descriptor 2 at a
temporary file while a graph is built, then restores it: the lines that look like absl/glog/TFLite
records go to this module's logger at DEBUG level; any other line (another thread's output in the
same instant) is written back to stderr unchanged. ``ACTIONFUSION_VERBOSE=1`` (or ``--verbose``
where a command has it) turns the filter off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Iterator

log = logging.getLogger(__name__)

VERBOSE_ENV = "ACTIONFUSION_VERBOSE"
NATIVE_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::|INFO: Created TensorFlow Lite|"
                         r"INFO: \[\w+\.cc:\d+\])")
"""Lines of absl / glog records (``I0000 00:00:17...``), absl's pre-init notice, TFLite's delegate line
and mediapipe 1.x's ``INFO: [accelerator_registry.cc:43] ...`` lines."""


def native_noise_allowed() -> bool:
    """Whether the user asked to see the native libraries' logs."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """While inside, native writes to descriptor 2 are captured and filtered (module docstring)."""
    if native_noise_allowed():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a detached process): nothing to quiet
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
    kept = []
    for line in text.splitlines():
        if NATIVE_LINE.match(line):
            log.debug("native: %s", line)
        elif line.strip():
            kept.append(line)
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
