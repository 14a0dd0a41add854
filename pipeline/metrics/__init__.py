"""Translation quality metrics, for the ``metrics`` stage and ``pipeline metrics``.

* :mod:`~pipeline.metrics.images`: image sets from a folder or a COCO manifest, uint8 batches;
* :mod:`~pipeline.metrics.inception`: FID, KID, IS and CIS (torchmetrics, torch-fidelity's
  Inception-v3 or a user's classifier);
* :mod:`~pipeline.metrics.diversity`: LPIPS diversity of style samples (``lpips``), and the
  samples made with a trained translator;
* :mod:`~pipeline.metrics.style_distance`: per-class colour/texture distance inside boxes (no
  network);
* :mod:`~pipeline.metrics.image_statistics`: the per-image light (Lab tone and contrast) of a
  set against the target's, and its spread over images (no network);
* :mod:`~pipeline.metrics.content_preservation`, :mod:`~pipeline.metrics.multimodality`,
  :mod:`~pipeline.metrics.read_selectivity`: the weight-free figures of the edges kept, the
  style samples' difference and the memory's test-time reads;
* :mod:`~pipeline.metrics.ceilings`, :mod:`~pipeline.metrics.linear_probe`: what a perfect
  translation scores on those figures, and what a perfect read of the content could reach;
* :mod:`~pipeline.metrics.suite`: all of them on two image sets, each skipped with a reason
  when its network weights or data are missing.

Nothing is downloaded: every network comes from a local file or is skipped.
"""
