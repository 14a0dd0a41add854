"""Memory read selectivity: at test time, do the pixels of a class read that class's items?

MGUIT's memory is class-aware only through its keys: during training a pixel reads the items
of its class (class masks from the boxes), at test time every pixel reads all items with the
weights of eq 2, ``alpha_{p,n} = softmax_n(cos(c_p, k_n))``, and no class information. Whether
the translation is class-aware therefore depends on how much of a pixel's read weight lands on
its own class's items without a mask. Definition (what :func:`read_selectivity` computes):

* per input image of the source split (at native size, cropped to a multiple of the content
  stride), the content features of its domain and their test-time read weights ``(HW, N)``;
* each content pixel labelled with the memory group of the box covering it, by the training
  rule (:func:`mguit.data.class_mask`, boxes scaled to the content resolution; background
  outside boxes);
* per group g: ``read_mass`` = the mean, over the pixels labelled g, of the summed read weight
  on g's items; ``chance`` = (items of g) / N, what uniform weights would give; ``ratio`` =
  read_mass / chance. A ratio near 1 means the test-time reads ignore the class; the closer
  read_mass gets to 1, the more the test reads look like the class-masked training reads;
* per group g: ``nearest_accuracy`` = the share of g's pixels whose nearest key (largest
  cosine, the item a read at a low temperature would pick) is one of g's items: whether the
  content features tell the classes apart at all, whatever the read temperature.

For a single memory (the ablation's ``sm`` variants) the items are not tied to classes and the
metric is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pipeline.metrics.ceilings import fraction_of
from pipeline.metrics.images import ImageItem, load_image
from pipeline.metrics.linear_probe import DEFINITION as PROBE_DEFINITION
from pipeline.metrics.linear_probe import PIXELS_PER_GROUP, group_pixels, probe_accuracy

DEFINITION = (
    "per memory group, the mean over the content pixels inside that group's boxes (background: "
    "outside all boxes; training's smaller-box-wins rule) of the summed test-time read weight "
    "(eq 2, no class mask) on the group's items ('read_mass'); 'chance' = the group's share of "
    "the items; 'ratio' = read_mass / chance (1: reads ignore the class); 'nearest_accuracy' = "
    "share of the group's pixels whose nearest key is one of the group's items")


# Not inference_mode: the probe fits a classifier, with gradients, to the features read here.
@torch.no_grad()
def read_selectivity(model: nn.Module, items: Sequence[ImageItem], domain: int,
                     device: torch.device, seed: int = 0) -> dict:
    """The metric of the module docstring over ``items`` (images with boxes) of ``domain``
    (0 = source side of the model, 1 = target side), with the linear-probe ceiling of
    :mod:`~pipeline.metrics.linear_probe` (its halves drawn with ``seed``)."""
    from mguit.data import class_mask

    memory = model.memory
    if not memory.class_aware:
        return {"skipped": "single memory (translator.memory.variant: single): its items are "
                           "not tied to classes"}
    stride = model.cfg.model.stride
    group_index = {g: i for i, g in enumerate(memory.groups)}
    background = group_index["background"]
    totals = {k: torch.zeros(len(memory.groups), dtype=torch.float64)
              for k in ("own_mass", "nearest_correct", "pixels")}
    probe_pixels = []
    for item in items:
        image = load_image(item)
        h, w = image.shape[0] // stride, image.shape[1] // stride
        if h == 0 or w == 0:
            continue
        x = torch.from_numpy(image[:h * stride, :w * stride]).permute(2, 0, 1)[None]
        x = x.to(device).float().div_(127.5).sub_(1)
        content = model.content_encoder(x, domain)
        boxes = np.array([[b.x0, b.y0, b.x1, b.y1] for b in item.boxes
                          if b.category in group_index], dtype=np.float64).reshape(-1, 4)
        labels = [b.category for b in item.boxes if b.category in group_index]
        mask = torch.from_numpy(class_mask(h, w, boxes / stride, labels, group_index,
                                           background))
        for k, v in memory.read_statistics(content, mask[None]).items():
            totals[k] += v
        probe_pixels.append(group_pixels(content[0], mask, len(memory.groups)))
    probe = probe_accuracy(probe_pixels, len(memory.groups), seed)
    counts = torch.bincount(memory.group_of_item.cpu(), minlength=len(memory.groups))
    per_group = {}
    for g, name in enumerate(memory.groups):
        chance = counts[g].item() / len(memory.group_of_item)
        pixels = int(totals["pixels"][g])
        read = totals["own_mass"][g].item() / pixels if pixels else None
        per_group[name] = {"read_mass": read, "chance": chance,
                           "ratio": None if read is None else read / chance,
                           "nearest_accuracy": (totals["nearest_correct"][g].item() / pixels
                                                if pixels else None),
                           "pixels": pixels, "probe_accuracy": probe[g],
                           "read_mass_fraction": fraction_of(read, probe[g])}
    return {"definition": DEFINITION, "per_class": per_group, "inputs": len(items),
            "read_temperature": memory.read_temperature,
            "probe": {"definition": PROBE_DEFINITION, "seed": seed,
                      "pixels_per_group_and_image": PIXELS_PER_GROUP}}

