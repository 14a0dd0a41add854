"""FID, KID, IS and CIS: torchmetrics' metrics, on network outputs computed once per image.

The networks take a uint8 RGB batch ``(B, 3, H, W)`` of any size and return ``(B, D)`` floats:

* the *feature network* of FID and KID: Inception-v3's 2048-d pool features;
* the *classifier* of IS and CIS: logits over its classes (Inception-v3's 1008 logits without
  the bias, as in the original IS code, or a user's TorchScript classifier).

Inception-v3 is torch-fidelity's port of the original TensorFlow graph
(``weights-inception-2015-12-05-6726825d.pth``), read from a local file, with the original's
bilinear resize to 299 x 299, so FIDs compare with published ones (torchmetrics' own wrapper
resizes with antialiasing, which moves FID a little). One forward pass gives the features and the
logits (:class:`InceptionV3`), and the outputs go to torchmetrics' ``FrechetInceptionDistance``,
``KernelInceptionDistance`` and ``InceptionScore`` through :class:`_Precomputed`, an identity
feature extractor: each image goes through the network once for all the metrics.

Definitions (torchmetrics' implementations):

* FID: Fréchet distance between Gaussians fit to the real and the fake features.
* KID: unbiased squared MMD with the kernel ``(x . y / D + 1) ** 3``, mean and standard
  deviation over ``subsets`` random subsets of ``subset_size`` images per side.
* IS: ``exp(E_x KL(p(y|x) || p(y)))``, mean and standard deviation over ``splits`` splits.
* CIS (Huang et al., MUNIT, 2018): for each input, the IS of its K translations (``p(y)`` the
  mean over those K); then the mean (and standard deviation) over the inputs.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from detection.errors import brief
from pipeline.metrics.errors import MetricsError

Network = Callable[[Tensor], Tensor]

# Known and harmless: torchmetrics warns on every construction that KID and IS keep all features
# in memory, and torch that the standard deviation of a single IS split is undefined (reported
# as 0 here).
_KNOWN_WARNINGS = (".*will save all extracted features in buffer.*",
                   r".*std\(\): degrees of freedom is <= 0.*")
# IS splits are capped so that each holds at least this many images: a split of one image
# always scores 1.
MIN_IMAGES_PER_SPLIT = 10


class InceptionV3:
    """torch-fidelity's Inception-v3 from a local weights file: :meth:`features` (B, 2048) and
    :meth:`logits` (B, 1008) of a uint8 batch (B, 3, H, W). Asked for both on the same batch
    tensor, it runs the network once."""

    def __init__(self, weights: str | Path, device: torch.device):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        try:
            # torch-fidelity reads the file with weights_only=False; reading it first with
            # weights_only=True refuses a file that would run code when unpickled.
            torch.load(weights, map_location="cpu", weights_only=True)
            net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"],
                feature_extractor_weights_path=str(weights))
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a bad file
            raise MetricsError(
                f"{weights}: not torch-fidelity's Inception-v3 weights "
                f"(weights-inception-2015-12-05-6726825d.pth): {brief(exc)}") from None
        self.net = net.to(device)
        self._batch: Tensor | None = None
        self._outputs: tuple[Tensor, Tensor] | None = None

    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images is not self._batch:
            self._batch, self._outputs = images, self.net(images)
        return self._outputs

    def features(self, images: Tensor) -> Tensor:
        return self._forward(images)[0]

    def logits(self, images: Tensor) -> Tensor:
        return self._forward(images)[1]


class ScriptedClassifier:
    """A user's TorchScript classifier: it gets float RGB ``(B, 3, H, W)`` in [0, 1] at the
    images' own size (it resizes and normalises as it was trained to) and returns ``(B, C)``
    logits."""

    def __init__(self, path: str | Path, device: torch.device):
        try:
            self.module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:  # noqa: BLE001 - torch.jit.load raises many types
            raise MetricsError(
                f"{path}: not a TorchScript classifier (save one with "
                f"torch.jit.save(torch.jit.script(model), path)): {brief(exc)}") from None

    def __call__(self, images: Tensor) -> Tensor:
        return self.module(images.float().div(255))


class _Precomputed(nn.Module):
    """The "feature extractor" handed to a torchmetrics metric when the features are already
    computed: ``(N, D) -> (N, D)``; ``num_features`` spares the metric a probe forward pass."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


@torch.inference_mode()
def extract(batches: Iterable[Tensor], networks: Sequence[Network],
            device: torch.device) -> list[Tensor]:
    """Every network's outputs on every uint8 batch ``(B, 3, H, W)``: one float64 CPU tensor
    ``(N, D_i)`` per network, rows in batch order."""
    outputs: list[list[Tensor]] = [[] for _ in networks]
    for batch in batches:
        x = batch.to(device)
        for out, net in zip(outputs, networks):
            out.append(net(x).double().cpu())
    return [torch.cat(out) for out in outputs]


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID between real ``(N, D)`` and fake ``(M, D)`` features (N, M >= 2)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kernel_distance(real: Tensor, fake: Tensor, subset_size: int, subsets: int,
                    seed: int) -> dict:
    """KID between real ``(N, D)`` and fake ``(M, D)`` features; ``subset_size`` is capped at
    ``min(N, M)`` (it must be >= 2) and the value recorded. The subsets are drawn from a
    generator seeded with ``seed``."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    with _quiet(), torch.random.fork_rng(devices=[]):
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets,
                                         subset_size=size)
        metric.update(real, real=True)
        metric.update(fake, real=False)
        torch.manual_seed(seed)   # KID draws its subsets with torch.randperm
        mean, std = metric.compute()
    return {"mean": float(mean), "std": float(std), "subset_size": size, "subsets": subsets}


def inception_score(logits: Tensor, splits: int = 10, seed: int = 0) -> dict:
    """IS of logits ``(N, C)``: mean and standard deviation over ``splits`` random splits,
    capped so that every split has at least ``MIN_IMAGES_PER_SPLIT`` images (one split below
    that). The standard deviation of a single split is reported as 0."""
    from torchmetrics.image.inception import InceptionScore

    splits = max(1, min(splits, len(logits) // MIN_IMAGES_PER_SPLIT))
    with _quiet(), torch.random.fork_rng(devices=[]):
        metric = InceptionScore(feature=_Precomputed(logits.shape[1]), splits=splits)
        metric.update(logits)
        torch.manual_seed(seed)   # IS shuffles the images with torch.randperm
        mean, std = metric.compute()
    return {"mean": float(mean), "std": float(std) if splits > 1 else 0.0, "splits": splits,
            "images": len(logits)}


def conditional_inception_score(logits_per_input: Sequence[Tensor]) -> dict:
    """CIS: the IS of each input's translations (logits ``(K, C)``), then the mean over inputs;
    the standard deviation is over inputs (0 for one input)."""
    scores = torch.tensor([_single_split_score(logits) for logits in logits_per_input],
                          dtype=torch.float64)
    std = float(scores.std()) if len(scores) > 1 else 0.0
    return {"mean": float(scores.mean()), "std": std, "inputs": len(scores),
            "samples": max(len(logits) for logits in logits_per_input)}


def _single_split_score(logits: Tensor) -> float:
    """IS of ``(K, C)`` logits as one split (no shuffling, so no seed)."""
    from torchmetrics.image.inception import InceptionScore

    with _quiet():
        metric = InceptionScore(feature=_Precomputed(logits.shape[1]), splits=1)
        metric.update(logits)
        return float(metric.compute()[0])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        for message in _KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield
