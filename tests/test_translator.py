"""MGUIT model and trainer with small, randomly initialised networks on tiny images."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mguit import load_translator
from mguit.config import MemoryConfig, ModelConfig, TrainConfig, TranslatorConfig
from mguit.model import MGUIT
from mguit.trainer import Trainer, linear_decay

CLASSES = ["person", "car", "truck", "bicycle"]


def tiny_config(**train) -> TranslatorConfig:
    """Networks of a few thousand parameters, C = 32, 360 -> 32 px crops."""
    cfg = TranslatorConfig(
        model=ModelConfig(base_channels=8, num_downsample=2, content_res_blocks=1,
                          shared_res_blocks=1, style_res_blocks=1, generator_res_blocks=1,
                          discriminator_channels=8, discriminator_layers=2,
                          discriminator_scales=2, content_discriminator_channels=16),
        memory=MemoryConfig(key_dim=32, items={"person": 1, "car": 2, "truck": 1, "bicycle": 1,
                                               "background": 2}),
        train=TrainConfig(**{"iterations": 4, "resize": 32, "crop": 32, "num_workers": 0,
                             "log_every": 1, "image_every": 2, "checkpoint_every": 2,
                             "snapshot_every": 4, "num_style_samples": 2, **train}),
    )
    cfg.validate()
    return cfg


def write_domain(root: Path, name: str, colour: tuple[int, int, int], n: int, seed: int) -> Path:
    """n images 48x40 with one coloured car box each, and their COCO manifest."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        pixels = rng.integers(0, 60, (40, 48, 3), dtype=np.uint8)
        x0, y0 = int(rng.integers(0, 24)), int(rng.integers(0, 20))
        pixels[y0:y0 + 16, x0:x0 + 20] = colour
        Image.fromarray(pixels).save(folder / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 48, "height": 40})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 2,
                            "bbox": [x0, y0, 20, 16], "area": 320, "iscrowd": 0})
    manifest = root / f"{name}.json"
    manifest.write_text(json.dumps({
        "info": {"image_root": str(folder)}, "images": images, "annotations": annotations,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}))
    return manifest


def domain_records(manifest: Path) -> list:
    """What the train_translator stage gives the trainer for a manifest."""
    from detection.manifest import load_manifest
    from pipeline.stages.train_translator import box_images

    return box_images(load_manifest(manifest))


@pytest.fixture(scope="module")
def manifest_paths(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("domains")
    return (write_domain(root, "source", (200, 40, 40), 4, 0),
            write_domain(root, "target", (40, 40, 200), 4, 1))


@pytest.fixture(scope="module")
def manifests(manifest_paths) -> tuple[list, list]:
    """The two domains' training records (a red and a blue domain of 4 images each)."""
    return domain_records(manifest_paths[0]), domain_records(manifest_paths[1])


def random_batch(b: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image_x": torch.rand(b, 3, size, size, generator=g) * 2 - 1,
            "image_y": torch.rand(b, 3, size, size, generator=g) * 2 - 1,
            "mask_x": torch.randint(0, 5, (b, size, size), generator=g),
            "mask_y": torch.randint(0, 5, (b, size, size), generator=g)}


def test_small_random_model_gradients_reach_encoders_and_generators_not_memory():
    torch.manual_seed(0)
    model = MGUIT(tiny_config())
    batch = random_batch()
    out = model(batch)
    losses = model.generator_losses(out, batch)
    assert set(losses) == {"self_recon", "cycle", "domain_adv", "content_adv", "kl", "latent",
                           "key_contrast", "value_contrast", "mode_seeking", "content_recon",
                           "total"}
    losses["total"].backward()
    for name, module in (("content", model.content_encoder), ("style x", model.style_encoders[0]),
                         ("style y", model.style_encoders[1]), ("G x", model.generators[0]),
                         ("G y", model.generators[1])):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, name
    assert all(b.grad is None for b in model.memory.buffers())


def test_small_random_model_mode_seeking_term_is_the_inverse_ratio_and_trains_generators():
    from mguit.losses import mode_seeking_loss

    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    s1, s2 = torch.zeros(1, 4, 1, 1), torch.full((1, 4, 1, 1), 0.25)
    # mean |a - b| = 0.5, mean |s1 - s2| = 0.25: ratio 2, loss 1 / 2.
    assert mode_seeking_loss(a, b, s1, s2).item() == pytest.approx(0.5, rel=1e-4)
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.loss.mode_seeking = 1.0
    model = MGUIT(cfg)
    batch = random_batch()
    out = model(batch)
    assert out["random2_y"].shape == out["random_y"].shape
    assert not torch.equal(out["random2_style_y"], out["random_style_y"])
    losses = model.generator_losses(out, batch)
    assert losses["mode_seeking"] > 0
    losses["mode_seeking"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.generators[1].parameters())


def test_small_random_model_content_reconstruction_compares_translations_content_to_inputs():
    torch.manual_seed(0)
    batch = random_batch()
    cfg = tiny_config()
    cfg.loss.content_recon = 2.0
    model = MGUIT(cfg)
    out = model(batch)
    losses = model.generator_losses(out, batch)
    # MUNIT's term: the content of x -> y must be the content of x (and y -> x that of y).
    expected = 2.0 * ((out["c_fake_y"] - out["c_x"]).abs().mean()
                      + (out["c_fake_x"] - out["c_y"]).abs().mean())
    torch.testing.assert_close(losses["content_recon"], expected)
    losses["content_recon"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.generators[1].parameters())
    cfg.loss.content_recon = 0.0
    assert "content_recon" not in MGUIT(cfg).generator_losses(out, batch)


def test_config_of_a_checkpoint_older_than_a_setting_gets_what_it_was_trained_with():
    from dataclasses import asdict

    from mguit.config import translator_config_from_dict

    data = asdict(tiny_config())
    assert translator_config_from_dict(data) == tiny_config()
    for section, key in (("model", "style_centering"), ("memory", "read_temperature"),
                         ("memory", "write_features"), ("loss", "mode_seeking"),
                         ("loss", "content_recon")):
        del data[section][key]
    old = translator_config_from_dict(data)
    assert (old.model.style_centering, old.memory.read_temperature, old.memory.write_features,
            old.loss.mode_seeking, old.loss.content_recon) == ("none", 1.0, "raw", 0.0, 0.0)
    assert old.memory.update_rate == tiny_config().memory.update_rate  # present: kept


def test_small_random_model_options_change_what_they_say():
    torch.manual_seed(0)
    batch = random_batch()
    cfg = tiny_config()
    cfg.model.detail = "none"
    cfg.loss.self_recon_style = "encoder"
    cfg.loss.random_style_adv = True
    model = MGUIT(cfg)
    out = model(batch)
    # The self-reconstruction is rendered from the style encoder's sample, not a memory read.
    torch.testing.assert_close(out["recon_x"], model.generators[0](out["c_x"], out["s_x"]))
    torch.manual_seed(1)
    d = model.discriminator_losses(out, batch)
    paper = tiny_config()
    paper.loss.random_style_adv = False
    plain = MGUIT(paper)
    plain.load_state_dict(model.state_dict())
    d_paper = plain.discriminator_losses(out, batch)
    # The random-style fakes are an extra "fake" term for each domain discriminator.
    assert d["disc_y"] > d_paper["disc_y"]
    fakes = {key for _, key in model._adversarial_fakes()}
    assert fakes == {"fake_x", "fake_y", "random_x", "random_y"}


def test_small_random_model_discriminator_step_leaves_generators_and_vice_versa(manifests):
    trainer = Trainer(tiny_config(), *manifests, out_dir=Path("/nonexistent"), device="cpu",
                      progress=False)
    model = trainer.model
    gen_before = [p.detach().clone() for p in model.generator_parameters()]
    dis_before = [p.detach().clone() for p in model.discriminator_parameters()]
    batch = random_batch()
    out = model(batch)
    d = model.discriminator_losses(out, batch)
    trainer.opt_dis.zero_grad()
    (d["disc_x"] + d["disc_y"]).backward()
    trainer.opt_dis.step()
    assert all(torch.equal(a, b) for a, b in zip(gen_before, model.generator_parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(dis_before,
                                                     model.discriminator_parameters()))
    dis_after = [p.detach().clone() for p in model.discriminator_parameters()]
    trainer.step(batch)
    assert not all(torch.equal(a, b) for a, b in zip(gen_before, model.generator_parameters()))
    keys_before = model.memory.keys.clone()
    trainer.step(batch)
    assert not torch.equal(keys_before, model.memory.keys), "memory must be updated each step"
    del dis_after


def test_class_balanced_cross_entropy_by_hand():
    from mguit.losses import class_balanced_cross_entropy

    ln2, ln3 = math.log(2), math.log(3)
    logits = torch.tensor([[0.0, 0.0, 0.0], [ln2, 0.0, 0.0], [0.0, 0.0, ln2]]).T
    labels = torch.tensor([0, 0, 2])
    # Pixel losses ln 3, ln 2 (2 / (2 + 1 + 1)) and ln 2; label 0's mean, then label 2's.
    expected = ((ln3 + ln2) / 2 + ln2) / 2
    value = class_balanced_cross_entropy(logits[None, :, None, :], labels[None, None, :])
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert value.item() != pytest.approx((ln3 + 2 * ln2) / 3, rel=1e-3)   # not the pixel mean


def test_small_random_model_class_discriminator_judges_groups_and_translations(manifests):
    from mguit.losses import class_balanced_cross_entropy

    torch.manual_seed(0)
    batch = random_batch()
    paper = MGUIT(tiny_config())
    out = paper(batch)
    assert paper.class_discriminators is None
    assert "disc_class" not in paper.discriminator_losses(out, batch)
    assert "class_adv" not in paper.generator_losses(out, batch)

    cfg = tiny_config()
    cfg.loss.class_adv = 2.0
    model = MGUIT(cfg)
    out = model(batch)
    D = model.class_discriminators.eval()       # spectral norm's power iteration held still
    # At half resolution (32 -> 16) a cell's label is its block's lower-right pixel's group
    # (nearest-exact: the pixel at 2i + 1), plus 1: index 0 is "translated".
    labels = {n: batch[f"mask_{n}"][:, 1::2, 1::2] + 1 for n in ("x", "y")}
    fakes = [(0, "fake_x", "y"), (1, "fake_y", "x"), (0, "random_x", "y"), (1, "random_y", "x")]
    real = sum(class_balanced_cross_entropy(D[d](batch[f"image_{n}"]), labels[n])
               for d, n in ((0, "x"), (1, "y")))
    translated = sum(F.cross_entropy(D[d](out[k]), torch.zeros_like(labels[n]))
                     for d, k, n in fakes)
    disc = model.discriminator_losses(out, batch)["disc_class"]
    torch.testing.assert_close(disc, real + translated)
    gen = model.generator_losses(out, batch)["class_adv"]
    # Each translation is to be told as the groups of the image it was made from.
    torch.testing.assert_close(gen, 2.0 * sum(class_balanced_cross_entropy(D[d](out[k]),
                                                                           labels[n])
                                              for d, k, n in fakes))
    gen.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.generators[1].blocks.parameters())
    # A target without boxes: no class term on either side.
    unlabeled = {k: v for k, v in batch.items() if k != "mask_y"}
    out = model(unlabeled)
    assert "disc_class" not in model.discriminator_losses(out, unlabeled)
    assert "class_adv" not in model.generator_losses(out, unlabeled)

    trainer = Trainer(cfg, *manifests, out_dir=Path("/nonexistent"), device="cpu",
                      progress=False)
    class_params = list(trainer.model.class_discriminators.parameters())
    assert {id(p) for p in class_params} <= {id(p) for p in
                                             trainer.model.discriminator_parameters()}
    before = [p.detach().clone() for p in class_params]
    logged = trainer.step(batch)
    assert {"disc_class", "class_adv"} <= set(logged)
    assert not any(torch.equal(a, b) for a, b in zip(before, class_params))


def test_lr_schedule_constant_then_linear_to_zero():
    f = linear_decay(10, 0.5)
    assert [f(i) for i in (0, 4, 5, 6, 9, 10)] == [1.0, 1.0, 1.0, 0.8, 0.2, 0.0]


def test_small_random_model_resume_equals_uninterrupted(tmp_path, manifests):
    straight = Trainer(tiny_config(), *manifests, out_dir=tmp_path / "a", device="cpu",
                       progress=False)
    losses_a = straight.train()
    first = Trainer(tiny_config(), *manifests, out_dir=tmp_path / "b", device="cpu",
                    progress=False)
    first.train(iterations=2)
    resumed = Trainer(tiny_config(), *manifests, out_dir=tmp_path / "b", device="cpu",
                      progress=False)
    losses_b = resumed.train()
    assert resumed.iteration == straight.iteration == 4
    assert losses_a == pytest.approx(losses_b, rel=1e-6, abs=1e-7)
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    ckpt = tmp_path / "a" / "checkpoints"
    assert (ckpt / "last.pt").exists() and (ckpt / "iter_000004.pt").exists()
    assert list((tmp_path / "a" / "samples").glob("iter_*.png"))
    assert list((tmp_path / "a" / "tensorboard").iterdir())


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, manifests):
    Trainer(tiny_config(iterations=2), *manifests, out_dir=tmp_path, device="cpu",
            progress=False).train()
    other = tiny_config(iterations=3)
    other.memory.items = {"person": 2, "car": 2, "truck": 1, "bicycle": 1, "background": 2}
    with pytest.raises(ValueError, match=r"other settings \(translator\.memory\.items: .*\)"):
        Trainer(other, *manifests, out_dir=tmp_path, device="cpu", progress=False).train()


def test_resume_counts_a_setting_newer_than_the_checkpoint_at_its_old_value(tmp_path,
                                                                            manifests):
    first = tiny_config(iterations=2)
    first.loss.cycle_style = "memory"
    Trainer(first, *manifests, out_dir=tmp_path, device="cpu", progress=False).train()
    path = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    # As written before these keys existed.
    del state["config"]["model"]["content_input"], state["config"]["loss"]["cycle_style"]
    torch.save(state, path)
    resumed = Trainer(tiny_config(iterations=3), *manifests, out_dir=tmp_path, device="cpu",
                      progress=False)
    with pytest.raises(ValueError, match=r"translator\.loss\.cycle_style: 'memory' -> 'region'"):
        resumed.train()
    same = tiny_config(iterations=3)
    same.loss.cycle_style = "memory"
    trainer = Trainer(same, *manifests, out_dir=tmp_path, device="cpu", progress=False)
    trainer.train()
    assert trainer.iteration == 3


@pytest.mark.slow
def test_small_random_model_overfits_two_pairs(tmp_path, manifests):
    """Reconstruction losses fall by a clear margin on a tiny fixed data set."""
    cfg = tiny_config(iterations=150, lr=2e-3, betas=(0.5, 0.999), checkpoint_every=1000,
                      image_every=1000, log_every=1000)
    cfg.model.init_std = 0.02
    trainer = Trainer(cfg, *manifests, out_dir=tmp_path, device="cpu", progress=False)
    batch = next(iter(trainer.loader(0, 1)))
    batch = {k: v for k, v in batch.items() if k.startswith(("image_", "mask_"))}
    first = trainer.step(batch)
    for _ in range(149):
        last = trainer.step(batch)
    assert last["self_recon"] < 0.5 * first["self_recon"]
    assert last["cycle"] < 0.6 * first["cycle"]


def test_small_random_model_logs_read_selectivity_per_class(tmp_path, manifests):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = Trainer(tiny_config(iterations=2), *manifests, out_dir=tmp_path, device="cpu",
                      progress=False)
    trainer.train()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    # The manifests' boxes are cars; every image has background.
    for name in ("read_mass/car", "nearest_accuracy/car", "read_mass/background"):
        values = [e.value for e in events.Scalars(f"memory/{name}")]
        assert values and all(0 <= v <= 1 for v in values)
    assert "memory/read_mass/person" not in tags     # no person pixel: nothing to log


def test_translate_any_size_returns_input_size_and_samples_are_seeded(tmp_path, manifests):
    Trainer(tiny_config(iterations=2), *manifests, out_dir=tmp_path, device="cpu",
            progress=False).train()
    model = load_translator(tmp_path / "checkpoints" / "last.pt", device="cpu")
    assert not model.training
    images = torch.rand(2, 3, 375, 1242) * 2 - 1
    out = model.translate(images[:, :, :45, :98], num_samples=3, seed=5)
    assert out.shape == (3, 2, 3, 45, 98)
    again = model.translate(images[1:2, :, :45, :98], num_samples=3, seed=5)
    torch.testing.assert_close(again[:, 0], out[:, 1], rtol=1e-4, atol=1e-5)
    full = model.translate(images[:1], num_samples=1)
    assert full.shape == (1, 1, 3, 375, 1242)
    assert torch.isfinite(full).all() and full.abs().max() <= 1


def test_load_translator_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_translator(tmp_path / "missing.pt")
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(1)}, bogus)
    with pytest.raises(ValueError, match="not an MGUIT training checkpoint"):
        load_translator(bogus)


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    import torch.distributed as dist
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_translator import domain_records, tiny_config
    from mguit.trainer import Trainer
    trainer = Trainer(tiny_config(iterations=2, batch_size=1), domain_records(Path({src!r})),
                      domain_records(Path({tgt!r})),
                      out_dir=Path({out!r}), device="cpu", progress=False)
    trainer.train()
    state = torch.cat([trainer.model.memory.keys.flatten(), trainer.model.memory.values.flatten(),
                       torch.cat([p.detach().flatten() for p in trainer.model.parameters()])])
    gathered = [torch.zeros_like(state) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, state)
    if dist.get_rank() == 0:
        assert all(torch.equal(gathered[0], g) for g in gathered[1:]), "ranks diverged"
        print("RANKS-IDENTICAL")
    dist.destroy_process_group()
""")


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_identical(tmp_path, manifest_paths):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), src=str(manifest_paths[0]),
                                        tgt=str(manifest_paths[1]), out=str(tmp_path / "run")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "--master_port=29517", str(script)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RANKS-IDENTICAL" in result.stdout


def unlabeled(records: list) -> list:
    """The records of a target without boxes (data.target.labels: none)."""
    from dataclasses import replace

    return [replace(r, boxes=np.zeros((0, 4)), labels=[]) for r in records]


def test_small_random_model_trains_a_target_without_boxes_on_every_item(tmp_path, manifests):
    """Without target masks the target's pixels address every item: the batch has no mask_y,
    the forward pass no m_y, and the target's content moves object items' keys (with an
    all-background mask it could only move the background items)."""
    source, target = manifests
    trainer = Trainer(tiny_config(iterations=1), source, unlabeled(target), tmp_path,
                      device="cpu", progress=False, target_labeled=False)
    item = trainer.dataset[0]
    assert "mask_x" in item and "mask_y" not in item
    batch = {k: v[None] for k, v in item.items() if k.startswith(("image_", "mask_"))}
    out = trainer.model(batch)
    assert "m_x" in out and "m_y" not in out
    memory = trainer.model.memory
    car = memory.groups.index("car")
    car_items = memory.group_of_item == car
    zeros = torch.zeros_like(out["c_x"])
    for mask_y, moves in ((None, True), (torch.full_like(out["m_x"], memory.background), False)):
        before = memory.keys.clone()
        memory.update(zeros, zeros, out["c_y"].detach(), out["mu_y"].detach(),
                      mask_x=torch.full_like(out["m_x"], -1), mask_y=mask_y)
        moved = not torch.allclose(memory.keys[car_items], before[car_items], atol=1e-5)
        assert moved == moves
        memory.keys.copy_(before)
    losses = trainer.train()
    assert trainer.iteration == 1 and all(np.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match="target_labeled is False but target records carry"):
        Trainer(tiny_config(), source, target, tmp_path / "x", device="cpu", progress=False,
                target_labeled=False)


def test_records_fingerprint_follows_what_training_sees(manifests):
    from mguit.data import records_fingerprint

    source, target = manifests
    base = records_fingerprint(source, target)
    assert records_fingerprint(list(source), list(target)) == base
    assert records_fingerprint(source, unlabeled(target), target_labeled=False) != base
    assert records_fingerprint(source, target, target_labeled=False) != base
    moved = [*target[:-1], __import__("dataclasses").replace(target[-1],
                                                             boxes=target[-1].boxes + 1)]
    assert records_fingerprint(source, moved) != base
    assert records_fingerprint(source, target[::-1]) != base


def test_resume_on_other_data_restarts_or_refuses(tmp_path, manifests, caplog):
    """A last.pt trained on other records: refused by default, started over (folder emptied)
    with on_data_change=restart; a checkpoint without a fingerprint (older) resumes by
    default and starts over with restart (the pipeline's stage reruns on changed data)."""
    source, target = manifests
    Trainer(tiny_config(iterations=2), source, target, tmp_path, device="cpu",
            progress=False).train()
    with pytest.raises(ValueError, match="trained on other images or boxes; delete"):
        Trainer(tiny_config(iterations=2), source, unlabeled(target), tmp_path, device="cpu",
                progress=False, target_labeled=False).train()
    restarted = Trainer(tiny_config(iterations=1), source, unlabeled(target), tmp_path,
                        device="cpu", progress=False, target_labeled=False,
                        on_data_change="restart")
    restarted._resume()
    assert restarted.iteration == 0 and "training from scratch" in caplog.text
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "samples").exists()
    restarted.train()
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["data"] == restarted.data_id
    del state["data"]
    torch.save(state, tmp_path / "checkpoints" / "last.pt")
    older = Trainer(tiny_config(iterations=1), source, target, tmp_path, device="cpu",
                    progress=False)
    older._resume()
    assert older.iteration == 1
    older = Trainer(tiny_config(iterations=1), source, target, tmp_path, device="cpu",
                    progress=False, on_data_change="restart")
    older._resume()
    assert older.iteration == 0 and "does not record its training data" in caplog.text


def test_small_random_model_values_rule_keeps_unlabeled_target_off_keys_and_eq8(tmp_path,
                                                                                 manifests):
    """unlabeled_target=values: a target without masks writes its values, not the keys, and
    adds no eq 8 term; the single rule writes keys and adds eq 8 on the target."""
    source, target = manifests
    results = {}
    for rule in ("single", "values"):
        trainer = Trainer(tiny_config(iterations=1), source, unlabeled(target), tmp_path / rule,
                          device="cpu", progress=False, target_labeled=False,
                          unlabeled_target=rule)
        item = trainer.dataset[0]
        batch = {k: v[None] for k, v in item.items() if k.startswith(("image_", "mask_"))}
        model = trainer.model
        out = model(batch)
        memory = model.memory
        keys, values = memory.keys.clone(), memory.values.clone()
        out_x_only = {**out, "c_x": torch.zeros_like(out["c_x"]),
                      "mu_x": torch.zeros_like(out["mu_x"]),
                      "m_x": torch.full_like(out["m_x"], -1)}
        model.update_memory(out_x_only)
        keys_moved = not torch.allclose(memory.keys, keys, atol=1e-5)
        values_moved = not torch.allclose(memory.values[1], values[1], atol=1e-5)
        memory.keys.copy_(keys)
        memory.values.copy_(values)
        losses = model.generator_losses(out, batch)
        expected = memory.feature_loss(out["c_x"], out["s_x"], 0, out["m_x"])["key"]
        results[rule] = (keys_moved, values_moved,
                         torch.isclose(losses["key_contrast"] / trainer.cfg.loss.key_contrast,
                                       expected).item())
    assert results == {"single": (True, True, False), "values": (False, True, True)}
    with pytest.raises(ValueError, match="unlabeled_target must be one of single, values"):
        MGUIT(tiny_config(), "other")
