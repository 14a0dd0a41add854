"""Loading a trained translator for inference."""

from __future__ import annotations

from pathlib import Path

import torch

from mguit.config import translator_config_from_dict
from mguit.model import MGUIT
from mguit.distributed import resolve_device


def load_translator(path: str | Path, device: str | torch.device = "auto") -> MGUIT:
    """The MGUIT model of a training checkpoint, in eval mode on ``device``.

    The checkpoint carries its own translator config, so no config file is needed. Loaded with
    ``weights_only=True``: a checkpoint cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (train the translator first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not an MGUIT training checkpoint (no 'model'/'config' entry)")
    model = MGUIT(translator_config_from_dict(state["config"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the config stored with them: {exc}") \
            from None
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev).eval()
