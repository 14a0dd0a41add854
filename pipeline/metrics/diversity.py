"""LPIPS diversity (paper Table 2): how different the style samples of one input are.

For every input, LPIPS (Zhang et al., 2018: v0.1, AlexNet trunk, calibrated linear layers)
between **all pairs** of its K samples, K (K - 1) / 2 pairs; the value is the mean over all pairs
of all inputs (in the stage every input has K samples, so it is also the mean of the inputs'
means). Higher is more diverse. Samples are compared as uint8 images, as ``translate`` writes
them.

Why the ``lpips`` package and not torchmetrics' LPIPS: torchmetrics builds its AlexNet with
ImageNet weights fetched from the internet and has no argument to avoid it, while
``lpips.LPIPS(pnet_rand=True)`` builds the trunk without weights (no download) and loads its
linear layers from the file shipped inside the package; the trunk is then loaded from a local
torchvision AlexNet state dict (``alexnet-owt-7be5be79.pth``).

The stage makes the samples with the trained translator (:func:`translate_samples`): inputs
chosen by :func:`choose_inputs`, each translated at its native size into K styles, sample 0
reading the memory's values and samples k >= 1 random style values seeded by (seed, image, k).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from detection.errors import brief
from pipeline.metrics.errors import MetricsError
from pipeline.metrics.images import ImageItem, load_image

if TYPE_CHECKING:
    from pipeline.translation.methods.translator import ExemplarStyles


def load_lpips(alexnet_weights: str | Path, device: torch.device) -> nn.Module:
    """LPIPS v0.1 (AlexNet) with the package's linear layers and the trunk from a torchvision
    AlexNet state dict (loaded with ``weights_only=True``); nothing is downloaded."""
    import lpips
    import torchvision

    try:
        state = torch.load(alexnet_weights, map_location="cpu", weights_only=True)
        alexnet = torchvision.models.alexnet(weights=None)
        alexnet.load_state_dict(state)   # strict: a file of another network is refused here
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a bad file
        raise MetricsError(f"{alexnet_weights}: not a torchvision AlexNet state dict "
                           f"(alexnet-owt-7be5be79.pth): {brief(exc)}") from None
    with warnings.catch_warnings():   # lpips asks torchvision for alexnet(pretrained=False)
        warnings.filterwarnings("ignore", category=UserWarning)
        net = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True,
                          verbose=False)
    # The calibrated linear layers are a file inside the lpips package (a local path, read
    # with weights_only=True here rather than by lpips' own unchecked torch.load).
    linear = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    state = torch.load(linear, map_location="cpu", weights_only=True)
    net.lins.load_state_dict({name.removeprefix("lin"): value         # "lin0.x" -> "0.x"
                              for name, value in state.items()})
    # lpips splits AlexNet's `features` into slice1..slice5, keeping the layer indices:
    # its "slice2.3.weight" is torchvision's "features.3.weight".
    trunk = {name: alexnet.state_dict()[f"features.{name.split('.', 1)[1]}"]
             for name in net.net.state_dict()}
    net.net.load_state_dict(trunk)
    return net.to(device).eval()


@torch.inference_mode()
def pair_distances(net: nn.Module, samples: Tensor, device: torch.device,
                   batch_size: int = 16) -> Tensor:
    """LPIPS between all pairs ``i < j`` of one input's samples ``(K, 3, H, W)`` uint8:
    ``(K (K - 1) / 2,)`` float64, in the order of ``torch.triu_indices``."""
    first, second = torch.triu_indices(len(samples), len(samples), offset=1)
    x = samples.to(device).float().div_(127.5).sub_(1)     # lpips takes [-1, 1]
    out = [net(x[first[s:s + batch_size]], x[second[s:s + batch_size]]).flatten()
           for s in range(0, len(first), batch_size)]
    return torch.cat(out).double().cpu()


def diversity_summary(distances: Sequence[Tensor], samples: int) -> dict:
    """The mean LPIPS over all pairs of all inputs (one tensor of pair distances per input)."""
    pairs = torch.cat(list(distances))
    return {"value": float(pairs.mean()), "inputs": len(distances), "samples": samples,
            "pairs": len(pairs), "pairing": "all pairs of samples of the same input"}


def choose_inputs(items: Sequence[ImageItem], count: int, seed: int) -> list[ImageItem]:
    """``count`` items (all, when fewer) drawn without replacement with ``seed``, in set order."""
    if count >= len(items):
        return list(items)
    chosen = np.random.default_rng(seed).choice(len(items), size=count, replace=False)
    return [items[i] for i in sorted(chosen)]


@torch.inference_mode()
def translate_samples(model: nn.Module, items: Sequence[ImageItem], num_samples: int,
                      seed: int, direction: str, device: torch.device,
                      exemplars: ExemplarStyles | None = None) -> Iterator[Tensor]:
    """Each item translated by an MGUIT model into ``num_samples`` styles at its native size:
    one ``(K, 3, H, W)`` uint8 tensor per item, rounded as ``translate`` writes its PNGs.

    Item i's random styles are seeded by ``(seed, its file stem)``, so they do not depend on
    which other items are evaluated. With ``exemplars`` (``translate.style: exemplar``) sample
    k reads the values of the reference image that seed draws for k, as ``translate`` does.
    """
    from pipeline.translation.plan import style_seed

    for item in items:
        x = torch.from_numpy(load_image(item)).permute(2, 0, 1)[None].to(device)
        x = x.float().div_(127.5).sub_(1)
        image_seed = style_seed(seed, item.path.stem)
        values = None if exemplars is None else torch.stack(
            [exemplars.values(exemplars.pick(image_seed, k))[None] for k in range(num_samples)])
        out = model.translate(x, direction, num_samples, seeds=[image_seed], values=values)
        yield out[:, 0].add(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8).cpu()
