"""The run report: ``runs/<name>/report/index.html``, one static page per run.

The page is plain HTML5 with a small inline style sheet and no JavaScript; its figures are PNG
files beside it in ``report/``, so the folder can be opened from disk, copied or archived
whole. Modules:

* :mod:`~pipeline.report.files`: the files of a run the report reads (required and optional);
* :mod:`~pipeline.report.scalars`: training curves read back from TensorBoard event files;
* :mod:`~pipeline.report.figures`: matplotlib figures (AP bar chart, loss curves);
* :mod:`~pipeline.report.grids`: image grids (source with its boxes | translated | style
  samples | a target image);
* :mod:`~pipeline.report.html`: the page itself, every value HTML-escaped;
* :mod:`~pipeline.report.build`: gathers the above and writes the folder atomically.

This package is imported lazily by the ``report`` stage: :mod:`~pipeline.report.build` pulls in
matplotlib, TensorBoard's reader and (for generated style samples) torch.
"""
