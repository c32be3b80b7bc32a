"""The synthetic NTU-format dataset: the embedded default.

Modules, in data-flow order:

- :mod:`.kinect_body`: the 25-joint Kinect v2 body, proportions, pose solving (IK), bone frames.
- :mod:`.motion_timing`, :mod:`.action_library`: the classes (real NTU action numbers) and their motions.
- :mod:`.scene`, :mod:`.cameras`: placing performers on the stage; NTU's three cameras.
- :mod:`.noise`, :mod:`.skeleton_record`: Kinect-like sensor noise and the ``.skeleton`` record.
- :mod:`.body_volumes`, :mod:`.rasterize`, :mod:`.background`: rendering masked depth and RGB.
- :mod:`.render_sample`, :mod:`.generate`: one sample on disk; the whole set with workers.
"""

from .action_library import SyntheticClass, synthetic_classes
from .generate import SynthConfig, SynthSummary, generate_synthetic_ntu

__all__ = ["SynthConfig", "SynthSummary", "SyntheticClass", "generate_synthetic_ntu", "synthetic_classes"]
