"""A finished run in FiftyOne: the ``inspect`` stage, ``pipeline inspect`` and ``pipeline export``.

* :mod:`~pipeline.inspection.runfiles`: what a run directory holds (config, manifests, the
  translated set, the detectors' predictions), read without FiftyOne;
* :mod:`~pipeline.inspection.database`: the offline FiftyOne setup (environment, the bundled
  ``mongod``, the database folder) and its errors;
* :mod:`~pipeline.inspection.dataset`: the grouped dataset of a run (source / translated /
  target slices, ground truth, predictions, ``evaluate_detections`` results);
* :mod:`~pipeline.inspection.export`: one set of a run in COCO, YOLO, VOC or KITTI layout,
  through FiftyOne's exporters;
* :mod:`~pipeline.inspection.app`: the App, on 127.0.0.1 unless asked otherwise.

Importing FiftyOne starts nothing, but it reads its configuration from the environment once,
so only :mod:`~pipeline.inspection.database` imports it, after setting that environment.
"""

from __future__ import annotations

from pipeline.inspection.errors import InspectionError

__all__ = ["InspectionError"]
