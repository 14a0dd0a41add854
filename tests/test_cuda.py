"""The CUDA paths, against the CPU: translator training (AMP and float32), the translate stage,
the torchvision detector, the metrics' networks, the NCCL process group, ``run.device: auto``.

Every test is marked ``cuda`` and skips, saying why, where PyTorch sees no CUDA device
(``benchmarks/device_check.sh`` runs them on a GPU machine). Small random networks throughout:
the figures are meaningless, the devices, dtypes and tensors meeting across them are what is
tested. A CPU tensor meeting a CUDA one anywhere on these paths raises, and fails the test.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import synthetic

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="no CUDA device: PyTorch "
                              f"{torch.__version__} sees none (torch.cuda.is_available())"),
]

CUDA = "cuda"


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    from test_translator import domain_records, write_domain

    root = tmp_path_factory.mktemp("domains")
    return (domain_records(write_domain(root, "source", (200, 40, 40), 4, 0)),
            domain_records(write_domain(root, "target", (40, 40, 200), 4, 1)))


def _trained_memory(domains, out: Path, device: str, amp: bool) -> tuple[dict, list[float]]:
    from mguit.trainer import Trainer
    from test_translator import tiny_config

    cfg = tiny_config(iterations=3, checkpoint_every=100, image_every=100, log_every=100)
    cfg.train.amp = amp
    torch.manual_seed(0)
    trainer = Trainer(cfg, *domains, out_dir=out, device=device, progress=False)
    losses = trainer.train()
    state = {k: v.detach().float().cpu() for k, v in trainer.model.memory.state_dict().items()}
    return state, list(losses.values())


@pytest.mark.parametrize("amp", [False, True])
def test_translator_training_on_cuda_follows_the_cpu(domains, tmp_path, amp):
    cpu, _ = _trained_memory(domains, tmp_path / "cpu", "cpu", amp=False)
    cuda, losses = _trained_memory(domains, tmp_path / "cuda", CUDA, amp=amp)
    assert all(np.isfinite(losses))
    # Three steps from the same weights on the same batches: float32 agrees to rounding (cuDNN
    # may convolve in TF32), AMP (float16 with a loss scaler) to its precision.
    tolerance = 5e-2 if amp else 2e-2
    for name in ("keys", "values"):
        torch.testing.assert_close(cuda[name], cpu[name], atol=tolerance, rtol=0, msg=name)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("kitti"), seed=5, width=96, height=48,
                              num_source=6, num_target_train=2, num_target_val=2,
                              progress=False).source_root


@pytest.mark.parametrize("amp", [False, True])
def test_translate_stage_on_cuda_keeps_labels_and_follows_the_cpu(kitti, tmp_path, amp):
    from pipeline.config import TranslateConfig
    from pipeline.translation import translate_dataset
    from test_translate import save_checkpoint, small_random_config

    checkpoint = save_checkpoint(tmp_path / "model.pt", small_random_config())
    outputs = {}
    for device, use_amp in (("cpu", False), (CUDA, amp)):
        options = TranslateConfig(batch_size=4, amp=use_amp, workers=0, writers=1, num_samples=2,
                                  style="memory")
        outputs[device] = tmp_path / device
        translate_dataset(kitti, outputs[device], checkpoint, options, device=device,
                          progress=False)
    for label in sorted((kitti / "label_2").glob("*.txt")):
        for out in outputs.values():
            for name in (label.name, f"{label.stem}_s1.txt"):
                assert (out / "label_2" / name).read_bytes() == label.read_bytes()
    images = sorted(p.name for p in (outputs["cpu"] / "image_2").glob("*.png"))
    assert images == sorted(p.name for p in (outputs[CUDA] / "image_2").glob("*.png"))
    for name in images:
        a = np.asarray(Image.open(outputs["cpu"] / "image_2" / name), dtype=np.int16)
        b = np.asarray(Image.open(outputs[CUDA] / "image_2" / name), dtype=np.int16)
        assert a.shape == b.shape
        # Grey levels: float32 rounds the same almost everywhere; AMP within its precision.
        assert np.abs(a - b).mean() < (3.0 if amp else 1.0), name


def test_torchvision_detector_trains_on_cuda_and_is_evaluated(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from detection import evaluate, predict, train
    from test_detection import tiny_config
    from tiny_detection import CLASSES, write_manifest

    manifest = write_manifest(tmp_path, "train")
    cfg = tiny_config(40)
    checkpoint = train([manifest], tmp_path / "det", cfg, CUDA, progress=False)
    events = EventAccumulator(str(tmp_path / "det" / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("loss/total")]
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    predictions = tmp_path / "predictions.json"
    predict(checkpoint, manifest, predictions, cfg, CUDA, progress=False)
    metrics = evaluate(manifest, predictions, CLASSES)
    assert metrics["images"] == 4 and np.isfinite(metrics["map50"])


def test_lpips_on_cuda_matches_the_cpu(tmp_path):
    import lpips

    from pipeline.metrics.diversity import pair_distances

    torch.manual_seed(0)
    net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False).eval()
    samples = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 64, 64),
                                                                  dtype=np.uint8))
    on_cpu = pair_distances(net, samples, torch.device("cpu"))
    on_cuda = pair_distances(net.to(CUDA), samples, torch.device(CUDA))
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-4, rtol=1e-3)


def test_inception_features_on_cuda_match_the_cpu(tmp_path, monkeypatch):
    from torch_fidelity import feature_extractor_inceptionv3 as tf

    from pipeline.metrics.inception import InceptionFeatures

    # A random Inception-v3 of torch-fidelity's layout, saved as its weights file would be.
    with monkeypatch.context() as patch:
        patch.setattr(tf.torch, "load", lambda *args, **kwargs: {})
        patch.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict",
                      lambda self, state, strict=True: None)
        torch.manual_seed(0)
        network = tf.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(tmp_path / "none.pth"))
    weights = tmp_path / "random_inception.pth"
    torch.save(network.state_dict(), weights)
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 96, 128),
                                                                 dtype=np.uint8))
    on_cpu = InceptionFeatures(weights, torch.device("cpu")).features(images)
    on_cuda = InceptionFeatures(weights, torch.device(CUDA)).features(images.to(CUDA))
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu().double(), on_cpu.cpu().double(), atol=1e-3,
                               rtol=1e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nccl_process_group_through_the_torchrun_code_path(monkeypatch):
    import torch.distributed as dist

    from mguit.distributed import distributed_context
    from mguit.trainer import average_gradients

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
                       "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    dist.init_process_group("nccl")      # what distributed_context starts under torchrun
    try:
        assert dist.get_backend() == "nccl"
        assert distributed_context() == (0, 1)
        parameter = torch.nn.Parameter(torch.ones(3, device=CUDA))
        parameter.grad = torch.full((3,), 2.0, device=CUDA)
        # One rank counted as two: NCCL's all-reduce (a sum over the one rank), then the mean.
        average_gradients([parameter], 2)
        assert torch.equal(parameter.grad.cpu(), torch.full((3,), 1.0))
    finally:
        dist.destroy_process_group()


def test_run_device_auto_chooses_cuda():
    from mguit.distributed import resolve_device

    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
