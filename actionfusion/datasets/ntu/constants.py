"""NTU RGB+D 60/120 constants: class names, two-person classes, joints, dataset sizes.

Every constant names its source. Sources:

- official README of shahroudy/NTURGB-D@ac2ebc8 (class names, sample counts, setups,
  performers, the one-shot protocol);
- ``connecting_joint`` in the official ``Matlab/show_skeleton_on_depthmaps.m`` of the same
  snapshot (the parent of each joint, 1-based);
- the Kinect for Windows SDK v2 ``JointType`` enumeration (joint names).
"""

from __future__ import annotations

# --- sizes (official README, shahroudy/NTURGB-D@ac2ebc8) ---------------------------------
NUM_CLASSES_NTU60 = 60
NUM_CLASSES_NTU120 = 120
NUM_SETUPS_NTU60 = 17
"""NTU RGB+D 60 uses setups S001-S017."""
NUM_SETUPS_NTU120 = 32
"""NTU RGB+D 120 uses setups S001-S032."""
NUM_CAMERAS = 3
NUM_PERFORMERS_NTU60 = 40
NUM_PERFORMERS_NTU120 = 106
NUM_SAMPLES_NTU60 = 56_880
NUM_SAMPLES_NTU120 = 114_480

# --- class names (official README, shahroudy/NTURGB-D@ac2ebc8; A001..A120) ---------------
NTU120_CLASS_NAMES: tuple[str, ...] = (
    'drink water',  # A001
    'eat meal/snack',  # A002
    'brushing teeth',  # A003
    'brushing hair',  # A004
    'drop',  # A005
    'pickup',  # A006
    'throw',  # A007
    'sitting down',  # A008
    'standing up (from sitting position)',  # A009
    'clapping',  # A010
    'reading',  # A011
    'writing',  # A012
    'tear up paper',  # A013
    'wear jacket',  # A014
    'take off jacket',  # A015
    'wear a shoe',  # A016
    'take off a shoe',  # A017
    'wear on glasses',  # A018
    'take off glasses',  # A019
    'put on a hat/cap',  # A020
    'take off a hat/cap',  # A021
    'cheer up',  # A022
    'hand waving',  # A023
    'kicking something',  # A024
    'reach into pocket',  # A025
    'hopping (one foot jumping)',  # A026
    'jump up',  # A027
    'make a phone call/answer phone',  # A028
    'playing with phone/tablet',  # A029
    'typing on a keyboard',  # A030
    'pointing to something with finger',  # A031
    'taking a selfie',  # A032
    'check time (from watch)',  # A033
    'rub two hands together',  # A034
    'nod head/bow',  # A035
    'shake head',  # A036
    'wipe face',  # A037
    'salute',  # A038
    'put the palms together',  # A039
    'cross hands in front (say stop)',  # A040
    'sneeze/cough',  # A041
    'staggering',  # A042
    'falling',  # A043
    'touch head (headache)',  # A044
    'touch chest (stomachache/heart pain)',  # A045
    'touch back (backache)',  # A046
    'touch neck (neckache)',  # A047
    'nausea or vomiting condition',  # A048
    'use a fan (with hand or paper)/feeling warm',  # A049
    'punching/slapping other person',  # A050
    'kicking other person',  # A051
    'pushing other person',  # A052
    'pat on back of other person',  # A053
    'point finger at the other person',  # A054
    'hugging other person',  # A055
    'giving something to other person',  # A056
    "touch other person's pocket",  # A057
    'handshaking',  # A058
    'walking towards each other',  # A059
    'walking apart from each other',  # A060
    'put on headphone',  # A061
    'take off headphone',  # A062
    'shoot at the basket',  # A063
    'bounce ball',  # A064
    'tennis bat swing',  # A065
    'juggling table tennis balls',  # A066
    'hush (quite)',  # A067
    'flick hair',  # A068
    'thumb up',  # A069
    'thumb down',  # A070
    'make ok sign',  # A071
    'make victory sign',  # A072
    'staple book',  # A073
    'counting money',  # A074
    'cutting nails',  # A075
    'cutting paper (using scissors)',  # A076
    'snapping fingers',  # A077
    'open bottle',  # A078
    'sniff (smell)',  # A079
    'squat down',  # A080
    'toss a coin',  # A081
    'fold paper',  # A082
    'ball up paper',  # A083
    'play magic cube',  # A084
    'apply cream on face',  # A085
    'apply cream on hand back',  # A086
    'put on bag',  # A087
    'take off bag',  # A088
    'put something into a bag',  # A089
    'take something out of a bag',  # A090
    'open a box',  # A091
    'move heavy objects',  # A092
    'shake fist',  # A093
    'throw up cap/hat',  # A094
    'hands up (both hands)',  # A095
    'cross arms',  # A096
    'arm circles',  # A097
    'arm swings',  # A098
    'running on the spot',  # A099
    'butt kicks (kick backward)',  # A100
    'cross toe touch',  # A101
    'side kick',  # A102
    'yawn',  # A103
    'stretch oneself',  # A104
    'blow nose',  # A105
    'hit other person with something',  # A106
    'wield knife towards other person',  # A107
    'knock over other person (hit with body)',  # A108
    'grab other person’s stuff',  # A109
    'shoot at other person with a gun',  # A110
    'step on foot',  # A111
    'high-five',  # A112
    'cheers and drink',  # A113
    'carry something with other person',  # A114
    'take a photo of other person',  # A115
    'follow other person',  # A116
    'whisper in other person’s ear',  # A117
    'exchange things with other person',  # A118
    'support somebody with hand',  # A119
    'finger-guessing game (playing rock-paper-scissors)',  # A120
)
"""The 120 action names; ``NTU120_CLASS_NAMES[label]`` with ``label = action - 1``.
Spelling (including "hush (quite)" and the typographic apostrophes of A109/A117) is the
official README's."""

NTU60_CLASS_NAMES: tuple[str, ...] = NTU120_CLASS_NAMES[:NUM_CLASSES_NTU60]
"""NTU RGB+D 60 is the first 60 classes of NTU RGB+D 120."""

# --- two-person (mutual) actions (official README: A50-A60 and A106-A120) ----------------
TWO_PERSON_ACTIONS: frozenset[int] = frozenset(list(range(50, 61)) + list(range(106, 121)))
"""1-based action numbers of the interactions between two performers."""


def is_two_person_action(action: int) -> bool:
    """True for the 1-based action numbers A050-A060 and A106-A120."""
    return int(action) in TWO_PERSON_ACTIONS


# --- one-shot protocol (official README, NTU RGB+D 120 one-shot recognition) --------------
ONE_SHOT_EVAL_ACTIONS: tuple[int, ...] = tuple(range(1, 121, 6))
"""The 20 novel evaluation classes A1, A7, ..., A115 (1-based)."""
ONE_SHOT_EXEMPLARS: tuple[str, ...] = tuple(
    f"S001C003P008R001A{a:03d}" for a in ONE_SHOT_EVAL_ACTIONS[:10]
) + tuple(f"S018C003P008R001A{a:03d}" for a in ONE_SHOT_EVAL_ACTIONS[10:])
"""One exemplar sample per evaluation class, in class order."""

# --- the 25 Kinect v2 joints: defined with the skeleton modality, re-exported here ----------
from ...modalities.skeleton.joint_constants import (  # noqa: E402
    CENTER_JOINT,
    JOINT_NAMES,
    JOINT_PARENTS,
    JOINT_PARENTS_1BASED,
    NUM_JOINTS,
    SPINE_MID,
)


def class_names(num_classes: int) -> tuple[str, ...]:
    """The class names of NTU RGB+D 60 (``num_classes=60``) or 120 (``num_classes=120``)."""
    if num_classes == NUM_CLASSES_NTU60:
        return NTU60_CLASS_NAMES
    if num_classes == NUM_CLASSES_NTU120:
        return NTU120_CLASS_NAMES
    raise ValueError(f"NTU has 60 or 120 classes, not {num_classes}")
