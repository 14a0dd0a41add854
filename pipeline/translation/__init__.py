"""Batch translation of a labeled dataset into the other domain's style, boxes preserved.

:func:`translate_dataset` is the engine behind the ``translate`` stage (MGUIT), the
``translate_baselines`` stage (Reinhard colour transfer, FDA) and the standalone ``pipeline
translate`` command. It runs any translation method (:mod:`pipeline.translation.methods`)
through the same plan, shards, resume, records and writer. Input: a COCO manifest
(``runs/<name>/data/source_train.json``) or a KITTI root. Output folder
(``runs/<name>/translated/`` for MGUIT, ``runs/<name>/baselines/<method>/`` for a baseline)::

    image_2/<id>.png        the translation, same file name (as .png) and size as the source
    label_2/<id>.txt        the KITTI label file, byte-identical to the source's
    annotations.json        COCO manifest of the translated images: the source's boxes and
                            categories; image_root "." (the folder), so the folder can move
    manifest.jsonl          one line per output: source path and sha256, output image and
                            label paths and sha256, seed, style seed, sample index
    translate.json          the settings that decide the output bytes
    reference.json          colour transfer with split statistics only: the reference
                            split's Lab statistics

With ``num_samples`` K > 1 every image has K translations, ``image_2/<id>_s<k>.png`` with
``label_2/<id>_s<k>.txt`` (k = 0..K-1; for MGUIT sample 0 reads the memory's own values,
samples k >= 1 random style values, or with ``translate.style: exemplar`` each sample the styles
of one reference image, with ``scene`` that image's background and the memory's objects; each
method documents its samples), all in one KITTI folder
and one COCO manifest. ``<id>`` is the KITTI frame id, or the file stem for other formats (whose
label files are written from the boxes: :mod:`pipeline.translation.sources`).

Guarantees:

* **Purity.** An output is a function of (method settings, image, seed, sample index) only:
  sample k of an image draws its randomness from a hash of (seed, image id) and k
  (:func:`~pipeline.translation.plan.style_seed`), not from its batch or shard. Batched
  convolutions may round differently from unbatched ones in the last float bits, which can move
  a value by one grey level after rounding to uint8; the tests bound this across batch sizes in
  float32: at most 1 grey level, on under 0.1 % of the values. ``amp`` (float16 on CUDA,
  bfloat16 on CPUs with AMX) changes the arithmetic itself: its outputs differ from float32 ones
  by a few grey levels. The baselines compute image by image: identical bytes at every batch
  size. Runs with the same batch size and precision compute the same batches
  (:mod:`~pipeline.translation.plan`), so shards and resumed runs reproduce the bytes of a
  single uninterrupted run exactly.
* **Native resolution, streaming.** Whole images, padded to the network stride and cropped back
  by :meth:`mguit.model.MGUIT.translate`; images are grouped by size into batches. Pixels live
  only for the few batches in flight, so memory does not grow with the dataset.
* **Speed.** Decoding runs in DataLoader worker processes and PNG encoding plus writing in a
  thread pool, both overlapping the forward pass (:mod:`~pipeline.translation.workers`);
  ``torch.inference_mode``, channels_last tensors, autocast (``amp``). On a CPU the network
  dominates: at KITTI size with the paper's widths one image already exceeds the caches and
  ``batch_size: 1`` is fastest, and bfloat16 on AMX is what makes it about twice as fast.
* **Resumable, atomic.** Every file is written under a temporary name and renamed. An output is
  logged only after its files are in place; a rerun verifies the logged hashes and redoes
  anything missing, changed or not logged, so a run killed at any point and rerun leaves
  exactly the files of an uninterrupted run (:mod:`~pipeline.translation.records`).
* **Sharded.** ``shard=Shard(I, N)`` (``--shard I/N``) takes a contiguous slice of the batches
  and logs to ``manifest.shard-I-of-N.jsonl``; the last shard to finish (or ``pipeline
  translate --merge``) checks the others' outputs and writes ``manifest.jsonl`` and
  ``annotations.json``. Under torchrun each rank takes its shard and rank 0 merges.
* **Bad input.** An unreadable image stops the run naming the file (finished outputs stay, a
  rerun resumes, ``annotations.json`` is not written), or with ``on_bad_image: skip`` is logged
  as skipped and counted. A folder holding another translation is refused unless
  ``overwrite``; a non-empty folder that ``translate`` did not write is always refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.translation.errors import TranslationError
from pipeline.translation.plan import Shard

if TYPE_CHECKING:
    from pipeline.translation.engine import TranslationSummary, merge_outputs, translate_dataset

__all__ = ["BASELINES", "BASELINE_OPTIONS", "Shard", "TranslationError", "TranslationSummary",
           "merge_outputs", "translate_dataset"]

# The baseline translation methods (pipeline.translation.methods), by the name of their output
# folder and detector training set, with the translate.* options each reads beyond
# reference_split (MGUIT's translation reads none of them).
BASELINE_OPTIONS = {"colour_transfer": ("colour_transfer_reference",), "fda": ("fda_beta",)}
BASELINES = tuple(BASELINE_OPTIONS)


def __getattr__(name: str):
    # The engine imports torch; reading this package's light parts (errors, shards) does not.
    if name in ("TranslationSummary", "merge_outputs", "translate_dataset"):
        from pipeline.translation import engine
        return getattr(engine, name)
    raise AttributeError(f"module 'pipeline.translation' has no attribute {name!r}")
