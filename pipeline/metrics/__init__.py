"""Translation quality metrics, for the ``metrics`` stage and ``pipeline metrics``.

* :mod:`~pipeline.metrics.images`: image sets from a folder or a COCO manifest, uint8 batches;
* :mod:`~pipeline.metrics.inception`: FID, KID, IS and CIS (torchmetrics, torch-fidelity's
  Inception-v3 or a user's classifier);
* :mod:`~pipeline.metrics.diversity`: LPIPS diversity of style samples (``lpips``), and the
  samples made with a trained translator;
* :mod:`~pipeline.metrics.style_distance`: per-class colour/texture distance inside boxes (no
  network);
* :mod:`~pipeline.metrics.suite`: all of them on two image sets, each skipped with a reason
  when its network weights or data are missing.

Nothing is downloaded: every network comes from a local file or is skipped.
"""
