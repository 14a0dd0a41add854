"""Where an image's appearance can travel in MGUIT besides the memory: the luminance detail
added to rendered images (``model.detail``), what the content encoders see
(``model.content_input``) and the styles reconstructions use (``loss.self_recon_style``,
``loss.cycle_style``)."""

from __future__ import annotations

import math

import pytest
import torch

from mguit.model import MGUIT
from mguit.networks.detail import add_detail, luma_detail
from test_translator import random_batch, tiny_config


def test_constant_image_has_no_detail_at_any_size():
    for h, w in ((1, 1), (3, 5), (16, 9)):
        image = torch.full((2, 3, h, w), 0.3)
        torch.testing.assert_close(luma_detail(image, 1.5), torch.zeros(2, 1, h, w))


def test_single_bright_pixel_by_hand():
    # Luma of pure green is 0.587. sigma = 0.5: radius ceil(1.5) = 2, taps -2..2 with weights
    # exp(-2 t^2); the blur of a lone pixel at its own place is the centre weight squared.
    image = torch.zeros(1, 3, 9, 9)
    image[0, 1, 4, 4] = 1.0
    weights = [math.exp(-2 * t * t) for t in range(-2, 3)]
    centre = weights[2] / sum(weights)
    side = weights[3] / sum(weights)
    detail = luma_detail(image, 0.5)
    assert detail[0, 0, 4, 4].item() == pytest.approx(0.587 * (1 - centre ** 2), rel=1e-5)
    assert detail[0, 0, 4, 5].item() == pytest.approx(-0.587 * centre * side, rel=1e-5)
    assert detail[0, 0, 0, 0].item() == pytest.approx(0.0, abs=1e-7)
    # One channel: luminance, added alike to R, G and B.
    assert detail.shape == (1, 1, 9, 9)


def test_luma_detail_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        luma_detail(torch.zeros(1, 1, 4, 4), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        luma_detail(torch.zeros(1, 3, 4, 4), 0.0)


def test_add_detail_adds_to_every_channel_and_clamps():
    rendered = torch.tensor([0.5, -0.2, 0.9]).view(1, 3, 1, 1)
    detail = torch.tensor([0.3]).view(1, 1, 1, 1)
    torch.testing.assert_close(add_detail(rendered, detail).flatten(),
                               torch.tensor([0.8, 0.1, 1.0]))
    assert add_detail(rendered, None) is rendered


def test_small_random_model_renders_with_the_inputs_detail():
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.model.detail = "luma"
    cfg.model.detail_sigma = 1.0
    cfg.loss.cycle_style = "memory"
    model = MGUIT(cfg)
    batch = random_batch()
    out = model(batch)
    d_x = luma_detail(batch["image_x"], 1.0)
    expected = (model.generators[1](out["c_x"], model.memory.read(out["c_x"], 1, out["m_x"]))
                + d_x).clamp(-1, 1)
    torch.testing.assert_close(out["fake_y"], expected)
    # The cycle adds the detail of the translation it starts from, not of the original.
    d_fake = luma_detail(out["fake_y"], 1.0)
    expected_cycle = (model.generators[0](out["c_fake_y"], model.memory.read(
        out["c_fake_y"], 0, out["m_x"])) + d_fake).clamp(-1, 1)
    torch.testing.assert_close(out["cycle_x"], expected_cycle)
    # Gradients still reach the generators through the clamp.
    model.generator_losses(out, batch)["total"].backward()
    assert sum(p.grad.abs().sum() for p in model.generators[1].parameters()
               if p.grad is not None) > 0
    # Test time: sample 0 is the generator's rendering of the memory read plus the detail,
    # at any size (the padding to the stride is cropped back with the detail).
    model.eval()
    images = torch.rand(2, 3, 13, 22) * 2 - 1
    translated = model.translate(images, num_samples=2, seed=3)
    assert translated.shape == (2, 2, 3, 13, 22)
    plain = tiny_config()
    plain.model.detail = "none"
    baseline = MGUIT(plain)
    baseline.load_state_dict(model.state_dict())
    baseline.eval()
    difference = translated[0] - baseline.translate(images)[0]
    unclamped = translated[0].abs() < 1
    torch.testing.assert_close(difference[unclamped],
                               luma_detail(torch.nn.functional.pad(
                                   images, (0, 2, 0, 3), mode="reflect"), 1.0)[
                                   ..., :13, :22].expand_as(difference)[unclamped])


def test_region_mean_by_hand():
    from mguit.model import region_mean

    style = torch.tensor([[1.0, 2.0], [3.0, 6.0]]).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    style[:, 1] *= -1
    mask = torch.tensor([[0, 1], [1, 1]]).view(1, 2, 2)
    # Group 0: the pixel 1.0 alone; group 1: mean of 2, 3, 6 = 11 / 3; group 2 is empty.
    expected = torch.tensor([[1.0, 11 / 3], [11 / 3, 11 / 3]])
    out = region_mean(style, mask, 3)
    torch.testing.assert_close(out[0, 0], expected)
    torch.testing.assert_close(out[0, 1], -expected)
    torch.testing.assert_close(region_mean(style, None, 3)[0, 0], torch.full((2, 2), 3.0))


def model_reconstructing_with(self_recon_style: str, cycle_style: str) -> MGUIT:
    """A small random model whose reconstructions are the generator's output alone."""
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.model.detail = "none"
    cfg.loss.self_recon_style = self_recon_style
    cfg.loss.cycle_style = cycle_style
    return MGUIT(cfg)


def test_small_random_model_reconstructions_use_the_styles_they_say():
    from mguit.model import region_mean

    model = model_reconstructing_with("region", "encoder")
    cfg = model.cfg
    batch = random_batch()
    out = model(batch)
    groups = len(model.memory.groups)
    torch.testing.assert_close(out["recon_y"], model.generators[1](
        out["c_y"], region_mean(out["s_y"], out["m_y"], groups)))
    # The cycle renders x back from its translation's content with x's own style.
    torch.testing.assert_close(out["cycle_x"], model.generators[0](out["c_fake_y"], out["s_x"]))
    model.generator_losses(out, batch)["total"].backward()
    assert sum(p.grad.abs().sum() for p in model.style_encoders[1].parameters()
               if p.grad is not None) > 0
    # own_style: mean renders from the Gaussian's mean instead of its sample.
    cfg.loss.own_style = "mean"
    out = model(batch)
    torch.testing.assert_close(out["recon_y"], model.generators[1](
        out["c_y"], region_mean(out["mu_y"], out["m_y"], groups)))
    torch.testing.assert_close(out["cycle_x"], model.generators[0](out["c_fake_y"], out["mu_x"]))


def test_small_random_model_object_styles_average_each_box_not_each_class():
    from mguit.model import feature_map, region_mean

    model = model_reconstructing_with("object", "object")
    batch = random_batch(size=32)
    # Two cars side by side in y's image 0: one class region, two objects.
    objects = torch.zeros(2, 32, 32, dtype=torch.long)
    objects[0, 4:20, 0:16], objects[0, 4:20, 16:32] = 1, 2
    groups = model.memory.groups
    batch["mask_y"] = torch.where(objects > 0, groups.index("car"), groups.index("background"))
    batch["objects_y"] = objects
    batch["objects_x"] = torch.zeros(2, 32, 32, dtype=torch.long)
    out = model(batch)
    o_y = feature_map(objects, tuple(out["c_y"].shape[-2:]))
    expected = region_mean(out["s_y"], o_y, 3)
    torch.testing.assert_close(out["recon_y"], model.generators[1](out["c_y"], expected))
    cars = o_y[0] > 0
    # The two cars keep two styles, where the class region would give them one.
    assert not torch.allclose(expected[0, :, o_y[0] == 1][:, 0], expected[0, :, o_y[0] == 2][:, 0])
    by_class = region_mean(out["s_y"], out["m_y"], len(groups))
    assert torch.unique(by_class[0, 0][cars]).numel() == 1
    # x's object map has no boxes: the cycle renders x from its whole image's mean style.
    torch.testing.assert_close(out["cycle_x"], model.generators[0](
        out["c_fake_y"], region_mean(out["s_x"], torch.zeros_like(out["m_x"]), 1)))
    # Without object masks (a target without boxes) "object" falls back to the class regions.
    del batch["objects_y"]
    out = model(batch)
    torch.testing.assert_close(out["recon_y"], model.generators[1](
        out["c_y"], region_mean(out["s_y"], out["m_y"], len(groups))))


def test_small_random_model_luma_content_cannot_see_colour():
    from mguit.networks import ContentEncoder

    torch.manual_seed(0)
    cfg = tiny_config().model
    cfg.content_input = "luma"
    encoder = ContentEncoder(cfg)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    grey = (0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2])[:, None]
    # Other colours of the same luminance: R and B moved against each other, pixel by pixel.
    shift = 0.2 * torch.rand(16, 16)
    recoloured = image.clone()
    recoloured[:, 0] += shift
    recoloured[:, 2] -= 0.299 * shift / 0.114
    for domain in (0, 1):
        reference = encoder(grey.expand(1, 3, 16, 16), domain)
        torch.testing.assert_close(encoder(image, domain), reference)
        torch.testing.assert_close(encoder(recoloured, domain), reference, atol=1e-5, rtol=1e-4)
    cfg.content_input = "rgb"
    rgb = ContentEncoder(cfg)
    rgb.load_state_dict(encoder.state_dict())
    assert not torch.allclose(rgb(image, 0), rgb(recoloured, 0), atol=1e-4)


def test_small_random_model_chroma_reconstruction_weighs_colour_only():
    from mguit.networks.detail import chroma

    grey = torch.full((1, 3, 2, 2), 0.4)
    torch.testing.assert_close(chroma(grey), torch.zeros(1, 3, 2, 2))
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    # luma = 0.299 - 0.587 - 0.114 = -0.402
    torch.testing.assert_close(chroma(red).flatten(), torch.tensor([1.402, -0.598, -0.598]))
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.loss.chroma_recon = 3.0
    model = MGUIT(cfg)
    batch = random_batch()
    out = model(batch)
    losses = model.generator_losses(out, batch)
    expected = 3.0 * sum((chroma(out[f"{kind}_{n}"]) - chroma(batch[f"image_{n}"])).abs().mean()
                         for kind in ("recon", "cycle") for n in ("x", "y"))
    torch.testing.assert_close(losses["chroma_recon"], expected)
    cfg.loss.chroma_recon = 0.0
    assert "chroma_recon" not in MGUIT(cfg).generator_losses(out, batch)


def test_small_random_model_kaiming_style_init_starts_the_mean_at_unit_scale():
    from mguit.networks import StyleEncoder

    image = torch.rand(2, 3, 32, 32) * 2 - 1
    cfg = tiny_config().model
    cfg.style_centering = "none"
    rms = {}
    for init in ("normal", "kaiming"):
        cfg.style_init = init
        torch.manual_seed(0)
        encoder = StyleEncoder(cfg)
        with torch.no_grad():
            stats = encoder(image)
        rms[init] = stats["mu"].square().mean().sqrt().item()
        # The log-variance head keeps N(0, init_std) either way: the sample's noise starts
        # near 1 (within e^(+-1/2)).
        assert stats["logvar"].abs().max().item() < 1
        assert encoder.logvar.weight.std().item() == pytest.approx(cfg.init_std, rel=0.1)
    # N(0, 0.02) shrinks the signal at every un-normalised layer; He's init keeps it.
    assert rms["normal"] < 0.01
    assert 0.1 < rms["kaiming"] < 10


def test_small_random_model_kaiming_modulation_init_lets_a_style_move_the_features():
    from mguit.networks import Generator
    from mguit.networks.generator import pixel_norm

    cfg = tiny_config().model
    styles = pixel_norm(torch.randn(64, cfg.feature_channels, 1, 1))
    spread = {}
    for init in ("normal", "kaiming"):
        cfg.modulation_init = init
        torch.manual_seed(0)
        generator = Generator(cfg)
        modulation = generator.blocks[0].mod1
        with torch.no_grad():
            gamma, beta = modulation.mlp(styles).chunk(2, dim=1)
        # How much (1 + gamma) and beta differ between styles: the style's hold on a feature.
        spread[init] = (gamma.std(dim=0).mean().item(), beta.std(dim=0).mean().item())
        # The rest of the generator keeps N(0, init_std) either way.
        assert generator.blocks[0].conv1.weight.std().item() == pytest.approx(cfg.init_std,
                                                                              rel=0.1)
    # Two N(0, 0.02) layers: a few percent; fan-in init: order one.
    assert max(spread["normal"]) < 0.05
    assert 0.3 < min(spread["kaiming"]) and max(spread["kaiming"]) < 3
