"""PKU-MMD's 51 action classes, by action ID.

Source: ``Actions.xlsx`` of the PKU-MMD release ("contains the 51 defined actions and corresponding
IDs", official README); the spec (shared/specs/ntu-data.md) does not list them. The list below is
that table as reproduced, with its IDs, by public loaders (kschlegel/DatasetLoader
``datasetloader/pkummd.py``; a cross-dataset label mapping that numbers them ``1,bow`` ...
``51,writing``). IDs are 1-based and follow the alphabetical order of the names; label =
action ID - 1 (MAMP ``data/pku_v1/pku_gendata.py``).
"""

from __future__ import annotations

PKU_MMD_CLASS_NAMES: tuple[str, ...] = (
    "bow", "brushing hair", "brushing teeth", "check time (from watch)", "cheer up", "clapping",
    "cross hands in front (say stop)", "drink water", "drop", "eat meal/snack", "falling",
    "giving something to other person", "hand waving", "handshaking", "hopping (one foot jumping)",
    "hugging other person", "jump up", "kicking other person", "kicking something",
    "make a phone call/answer phone", "pat on back of other person", "pickup", "playing with phone/tablet",
    "point finger at the other person", "pointing to something with finger", "punching/slapping other person",
    "pushing other person", "put on a hat/cap", "put something inside pocket", "reading",
    "rub two hands together", "salute", "sitting down", "standing up", "take off a hat/cap",
    "take off glasses", "take off jacket", "take out something from pocket", "taking a selfie",
    "tear up paper", "throw", "touch back (backache)", "touch chest (stomachache/heart pain)",
    "touch head (headache)", "touch neck (neckache)", "typing on a keyboard",
    "use a fan (with hand or paper)/feeling warm", "wear jacket", "wear on glasses", "wipe face", "writing",
)
"""Class names by 0-based label (action ID - 1)."""
