"""The native-library log filter: absl/glog/TFLite lines written to descriptor 2 while a mediapipe
graph is built stay off the console (logged at DEBUG), other lines pass, and ACTIONFUSION_VERBOSE
turns the filter off."""

from __future__ import annotations

import logging
import os

from actionfusion.modalities.pose.native_log import VERBOSE_ENV, quiet_native_stderr

NOISE = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
         b"I0000 00:00:1796550961.676256    6209 task_runner.cc:85] GPU suport is not available\n"
         b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
         b"W0000 00:00:1796550961.747479    6228 inference_feedback_manager.cc:114] Feedback manager ...\n"
         b"INFO: [accelerator_registry.cc:43] DestroyAccelerator: ptr=0x7efe54004ab0, name=CpuAccelerator\n")


def test_native_noise_is_filtered_and_other_lines_pass(capfd, caplog, monkeypatch) -> None:
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with caplog.at_level(logging.DEBUG, logger="actionfusion.modalities.pose.native_log"):
        with quiet_native_stderr():
            os.write(2, NOISE + b"a line of ours\n")
    err = capfd.readouterr().err
    assert err == "a line of ours\n"
    assert sum("native:" in r.getMessage() for r in caplog.records) == 5
    os.write(2, b"after\n")  # descriptor 2 is restored
    assert capfd.readouterr().err == "after\n"


def test_verbose_lets_everything_through(capfd, monkeypatch) -> None:
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with quiet_native_stderr():
        os.write(2, NOISE)
    assert capfd.readouterr().err == NOISE.decode()
