"""MGUIT domain-adaptation pipeline: prepare data, train the translator, translate a labeled
dataset, train and evaluate detectors, look at the results. See README.md and DESIGN.md."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mguit-pipeline")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
