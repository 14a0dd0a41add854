"""The paper's published numbers, quoted for reference rows in tables and reports.

Jeong et al., "Memory-guided Unsupervised Image-to-image Translation", CVPR 2021. Nothing here
is measured by this project: every table that shows these marks them as quoted.
"""

from __future__ import annotations

# Table 3: per-class AP for KITTI -> Cityscapes (%), columns Pers., Car, Truc., Bic., mAP. Quoted as
# printed; the paper's detector is trained on its own (translated) images, not by this run.
PAPER_TABLE3_CLASSES = ("person", "car", "truck", "bicycle")
PAPER_TABLE3 = (
    ("DT [14]", (28.5, 40.7, 25.9, 29.7, 31.2)),
    ("DAF [2]", (39.2, 40.2, 25.7, 48.9, 38.5)),
    ("DARL [17]", (46.4, 58.7, 27.0, 49.1, 45.3)),
    ("DAOD [36]", (47.3, 59.1, 28.3, 49.6, 46.1)),
    ("DUNIT w/o IC [1]", (56.2, 59.5, 24.9, 48.2, 47.2)),
    ("DUNIT w/ IC [1]", (60.7, 65.1, 32.7, 57.7, 54.1)),
    ("MGUIT (Ours)", (58.3, 68.2, 33.4, 58.4, 54.6)),
)

# The rows of Table 3 a run reproduces, and the baselines and ceiling beside them, by
# the training set of their detector.
ROW_NAMES = {
    "source_only": "Source only",
    "translated": "Translated (MGUIT)",
    "oracle": "Oracle (target train)",
    "source_plus_translated": "Source + translated",
    "colour_transfer": "Reinhard colour transfer",
    "fda": "FDA (Fourier domain adaptation)",
    "perfect_translation": "Perfect translation (ceiling)",
}


# Table 4 (INIT sunny <-> night): LPIPS, CIS, IS for sunny -> night,
# CIS, IS for night -> sunny. Quoted as printed.
PAPER_TABLE4 = {
    "sm_tl": (0.287, 1.061, 1.189, 1.037, 1.080),
    "sm_cl": (0.310, 1.094, 1.206, 1.062, 1.107),
    "cm_tl": (0.328, 1.156, 1.253, 1.101, 1.103),
    "cm_cl": (0.346, 1.176, 1.271, 1.115, 1.130),
}
