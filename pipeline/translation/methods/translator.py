"""MGUIT as a translation method: a trained translator checkpoint.

With ``translate.style: memory`` (the paper) sample 0 of an image reads the memory's own
values, samples k >= 1 random style values seeded by the image's style seed
(:meth:`mguit.model.MGUIT.translate`). With ``exemplar`` sample k reads the values of one
reference image (:class:`ExemplarStyles`), drawn by the style seed and k as the baselines draw
theirs; with ``scene`` only the background's values come from that image (its scene and light)
and the object classes' from the memory. Whole images at native resolution, padded to the
network stride and cropped back. The settings are the checkpoint's sha256, the direction and,
for styles from reference images, the style and the reference split.

Batched convolutions may round differently from unbatched ones in the last float bits, which
can move a value by one grey level after rounding to uint8 (at most 1 grey level, on under
0.1 % of the values, in float32). ``amp`` (float16 on CUDA, bfloat16 on CPUs with AMX) changes
the arithmetic itself: its outputs differ from float32 ones by a few grey levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from detection.errors import brief
from mguit.config import TranslatorConfig
from mguit.data import BACKGROUND, class_mask
from mguit.inference import load_translator
from mguit.model import DIRECTIONS, MGUIT
from pipeline.config import TranslateConfig
from pipeline.formats import coco
from pipeline.translation.errors import TranslationError
from pipeline.translation.methods.reference import ReferenceSet
from pipeline.translation.records import sha256_file


class ExemplarStyles:
    """The values of each image of a reference manifest (:meth:`MGUIT.exemplar_values`, with
    its boxes as class masks), computed when an image is first drawn and kept: ``N x C``
    floats an image, 20 KB at the paper's widths.

    ``style``: ``exemplar`` (every memory group takes the image's style) or ``scene`` (the
    background alone; the object classes keep the memory's values). A single memory has no
    class groups: the whole image is its scene, and every item takes the image's style under
    either.
    """

    def __init__(self, model: MGUIT, reference: ReferenceSet,
                 boxes: list[tuple[list[list[float]], list[str]]], domain: int,
                 device: torch.device, style: str = "exemplar"):
        self.model, self.reference, self.boxes = model, reference, boxes
        self.domain, self.device, self.style = domain, device, style
        self.group_index = {name: i for i, name in enumerate(model.memory.groups)}
        self.groups = None
        if style == "scene" and model.memory.class_aware:
            self.groups = [self.group_index[BACKGROUND]]
        self._values: dict[int, Tensor] = {}

    @classmethod
    def read(cls, model: MGUIT, manifest: Path, direction: str, device: torch.device,
             style: str = "exemplar") -> ExemplarStyles:
        """The images and boxes of ``manifest``, styles of ``direction``'s output domain."""
        reference = ReferenceSet.read(manifest)
        boxes = coco.read_manifest(manifest).boxes_of_images()
        return cls(model, reference, boxes, DIRECTIONS[direction][1], device, style)

    def pick(self, style_seed: int, sample: int) -> int:
        """The reference image of sample ``sample`` of the image with ``style_seed``."""
        return self.reference.pick(style_seed, sample)

    def values(self, index: int) -> Tensor:
        """``(N, C)`` float32 on the device: the values of reference image ``index``."""
        if index not in self._values:
            pixels = self.reference.load(index)
            boxes, labels = self.boxes[index]
            unknown = sorted(set(labels) - set(self.group_index))
            if unknown:
                raise TranslationError(
                    f"{self.reference.paths[index]}: class {unknown[0]!r} (listed in "
                    f"{self.reference.manifest}) has no memory items; the translator's groups "
                    f"are {list(self.group_index)}")
            height, width = pixels.shape[:2]
            mask = class_mask(height, width, boxes, labels, self.group_index,
                              self.group_index[BACKGROUND])
            image = torch.tensor(pixels, device=self.device).permute(2, 0, 1)[None]
            image = image.float().div(127.5).sub(1)
            mask = torch.from_numpy(mask).to(self.device)[None]
            self._values[index] = self.model.exemplar_values(image, mask, self.domain,
                                                             self.groups).float()
        return self._values[index]


class TranslatorMethod:
    """MGUIT from a training checkpoint, on ``device``; build it with :meth:`load`."""

    name = "mguit"

    def __init__(self, model: MGUIT, checkpoint: Path, device: torch.device,
                 options: TranslateConfig, exemplars: ExemplarStyles | None = None):
        self.model, self.checkpoint, self.device = model, checkpoint, device
        self.direction, self.channels_last = options.direction, options.channels_last
        self.amp_dtype = autocast_dtype(device) if options.amp else None
        self.exemplars = exemplars
        self.description = f"MGUIT {checkpoint.name}" + (f" ({exemplars.style} styles)"
                                                           if exemplars else "")

    @classmethod
    def load(cls, checkpoint: Path, device: torch.device, options: TranslateConfig,
             expected: TranslatorConfig | None = None,
             reference: Path | None = None) -> TranslatorMethod:
        """Load ``checkpoint``; with ``expected`` (the run's translator config), refuse one
        whose networks or memory differ. ``reference``: the manifest whose images lend their
        styles under ``options.style`` exemplar or scene. Raises :class:`TranslationError`."""
        if options.uses_reference and reference is None:
            raise TranslationError(f"translate.style is {options.style} but no reference "
                                   "manifest was given (translate.reference_split, or "
                                   "--reference)")
        try:
            model = load_translator(checkpoint, device)
        except (FileNotFoundError, ValueError) as exc:
            raise TranslationError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a non-checkpoint
            raise TranslationError(f"{checkpoint}: cannot be loaded as an MGUIT checkpoint "
                                   f"({brief(exc)})") from None
        if expected is not None:
            check_checkpoint_config(model.cfg, expected, checkpoint)
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        exemplars = None
        if options.uses_reference:
            exemplars = ExemplarStyles.read(model, Path(reference), options.direction, device,
                                            options.style)
        return cls(model, checkpoint, device, options, exemplars)

    def settings(self) -> dict:
        # MGUIT's settings predate translation methods and name none ("method" absent).
        settings = {"checkpoint_sha256": sha256_file(self.checkpoint),
                    "direction": self.direction}
        if self.exemplars is not None:
            reference = self.exemplars.reference
            settings.update(style=self.exemplars.style, reference=str(reference.manifest),
                            reference_sha256=reference.sha256)
        return settings

    def files(self) -> dict[str, bytes]:
        return {}

    def translate(self, pixels: Tensor, num_samples: int, seeds: Sequence[int]) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 -> ``(K, B, H, W, 3)`` uint8, one style seed per image."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        if not self.channels_last:
            x = x.contiguous()      # the permuted (B, H, W, 3) tensor is channels_last already
        x = x.float().div_(127.5).sub_(1)
        values = None
        if self.exemplars is not None:
            values = torch.stack([
                torch.stack([self.exemplars.values(self.exemplars.pick(seed, k)) for seed in seeds])
                for k in range(num_samples)])
        with torch.autocast(self.device.type, dtype=self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            translated = self.model.translate(x, self.direction, num_samples, seeds=seeds,
                                              values=values)
        return to_uint8(translated).numpy()


def check_checkpoint_config(found: TranslatorConfig, expected: TranslatorConfig,
                            path: Path) -> None:
    """Refuse a checkpoint whose networks or memory differ from the config's."""
    changes = []
    for section in ("model", "memory"):
        old, new = asdict(getattr(found, section)), asdict(getattr(expected, section))
        changes += [f"translator.{section}.{key}: checkpoint {old.get(key)!r}, config "
                    f"{value!r}" for key, value in new.items() if old.get(key) != value]
    if changes:
        raise TranslationError(
            f"{path}: the checkpoint does not match the config's translator section "
            f"({'; '.join(changes)}); train it again (pipeline run CONFIG --only "
            "train_translator), point translate.checkpoint at a matching checkpoint, or restore "
            "those settings")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast type of ``amp`` on ``device``: float16 on CUDA, bfloat16 on a CPU that
    computes it natively (AMX or AVX512-BF16: about twice as fast as float32 there), else None
    (float32; emulated bfloat16 would be slower)."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and (torch.cpu._is_amx_tile_supported()
                                 or torch.cpu._is_avx512_bf16_supported()):
        return torch.bfloat16
    return None


def to_uint8(images: Tensor) -> Tensor:
    """``(..., 3, H, W)`` in [-1, 1] -> ``(..., H, W, 3)`` uint8 on the CPU (rounded)."""
    pixels = images.float().add(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
    return pixels.movedim(-3, -1).contiguous().cpu()
