"""The DRIT-style networks: shapes, weight sharing, input checks, initialisation, gradients."""

from __future__ import annotations

import pytest
import torch

from mguit.config import ModelConfig
from mguit.networks import (ClassDiscriminator, ContentDiscriminator, ContentEncoder,
                            Generator, MultiScaleDiscriminator, StyleEncoder, init_weights)

TINY = ModelConfig(base_channels=8, num_downsample=2, content_res_blocks=1, shared_res_blocks=1,
                   style_res_blocks=1, generator_res_blocks=1, discriminator_channels=8,
                   discriminator_layers=2, discriminator_scales=2,
                   content_discriminator_channels=16)
C = TINY.feature_channels  # 32


@pytest.fixture
def small_random_networks():
    torch.manual_seed(0)
    return {
        "content": ContentEncoder(TINY),
        "style": StyleEncoder(TINY),
        "generator": Generator(TINY),
        "image_d": MultiScaleDiscriminator(TINY),
        "content_d": ContentDiscriminator(TINY),
    }


def images(batch: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(batch, 3, height, width) * 2 - 1


@pytest.mark.parametrize("height,width", [(32, 32), (32, 96), (48, 64)])
def test_small_random_networks_output_shapes(small_random_networks, height, width):
    nets = small_random_networks
    x = images(2, height, width)
    h, w = height // TINY.stride, width // TINY.stride

    content = nets["content"](x, 0)
    style = nets["style"](x)
    out = nets["generator"](content, style["mu"])
    assert content.shape == (2, C, h, w)
    assert style["mu"].shape == style["logvar"].shape == (2, C, h, w)
    assert out.shape == x.shape
    assert out.abs().max() <= 1
    assert nets["content_d"](content).shape == (2,)
    assert [tuple(m.shape) for m in nets["image_d"](out)] == [
        (2, 1, height // 4, width // 4),        # 2 stride-2 layers
        (2, 1, height // 8, width // 8),        # on the image pooled once
    ]


@pytest.mark.parametrize("height,width,out", [(32, 32, (16, 16)), (33, 47, (16, 23)),
                                              (8, 9, (4, 4))])
def test_small_random_class_discriminator_gives_group_logits_at_half_resolution(height, width,
                                                                                out):
    torch.manual_seed(0)
    d = ClassDiscriminator(TINY, groups=5)
    logits = d(images(2, height, width))
    assert logits.shape == (2, 6, *out)            # 5 groups + "translated"
    assert torch.isfinite(logits).all() and logits.abs().sum() > 0
    with pytest.raises(ValueError, match=r"H, W >= 8, got \(1, 3, 6, 32\)"):
        d(images(1, 6, 32))
    with pytest.raises(ValueError, match="expected images"):
        d(torch.rand(1, 1, 32, 32))


def test_small_random_multiscale_discriminator_odd_sizes_pool_by_ceil(small_random_networks):
    maps = small_random_networks["image_d"](images(1, 36, 44))
    assert len(maps) == TINY.discriminator_scales
    assert [tuple(m.shape[-2:]) for m in maps] == [(9, 11), (4, 5)]  # 36x44 -> 18x22 -> 4x5


def test_small_random_content_encoder_shares_its_deepest_block(small_random_networks):
    encoder = small_random_networks["content"]
    calls = []
    encoder.shared.register_forward_hook(lambda module, args, out: calls.append(module))
    encoder(images(1, 32, 32), 0)
    encoder(images(1, 32, 32), 1)
    assert len(calls) == 2 and calls[0] is calls[1]
    stem_params = [{id(p) for p in stem.parameters()} for stem in encoder.stems]
    shared_params = {id(p) for p in encoder.shared.parameters()}
    assert shared_params and not (stem_params[0] & stem_params[1])
    assert not (shared_params & (stem_params[0] | stem_params[1]))

    encoder.zero_grad(set_to_none=True)
    encoder(images(1, 32, 32), 0).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.shared.parameters()
               if p.ndim > 1)
    assert any(p.grad is not None for p in encoder.stems[0].parameters())
    assert all(p.grad is None for p in encoder.stems[1].parameters())


def test_small_random_content_encoder_mixed_domain_batch_equals_separate_calls(
        small_random_networks):
    encoder = small_random_networks["content"]
    x = images(3, 32, 48)
    mixed = encoder(x, torch.tensor([1, 0, 1]))
    torch.testing.assert_close(mixed[[0, 2]], encoder(x[[0, 2]], 1))
    torch.testing.assert_close(mixed[[1]], encoder(x[[1]], 0))
    with pytest.raises(ValueError, match="domain"):
        encoder(x, torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="domain"):
        encoder(x, 2)


@pytest.mark.parametrize("height,width", [(30, 32), (32, 34), (4, 32)])
def test_small_random_encoders_reject_sizes_off_the_stride(small_random_networks, height, width):
    x = images(1, height, width)
    with pytest.raises(ValueError, match="multiples of 4"):
        small_random_networks["content"](x, 0)
    with pytest.raises(ValueError, match="multiples of 4"):
        small_random_networks["style"](x)


def test_small_random_networks_reject_bad_shapes(small_random_networks):
    nets = small_random_networks
    content = torch.randn(1, C, 8, 8)
    with pytest.raises(ValueError, match="same shape"):
        nets["generator"](content, torch.randn(1, C, 8, 4))
    with pytest.raises(ValueError, match="too small"):
        nets["image_d"](images(1, 4, 64))
    with pytest.raises(ValueError, match="content maps"):
        nets["content_d"](torch.randn(1, C + 1, 8, 8))


def test_init_weights_draws_the_paper_std_and_resets_norms():
    torch.manual_seed(0)
    generator = Generator(TINY)
    conv = generator.blocks[0].conv1                       # 32 * 32 * 9 = 9216 weights
    assert conv.weight.std().item() == pytest.approx(TINY.init_std, rel=0.05)
    assert conv.weight.mean().abs().item() < 0.1 * TINY.init_std
    assert torch.count_nonzero(conv.bias) == 0
    layer_norm = generator.decoder[1][1]
    assert torch.all(layer_norm.weight == 1) and torch.count_nonzero(layer_norm.bias) == 0

    with torch.no_grad():
        conv.weight.fill_(3.0)
        layer_norm.weight.fill_(2.0)
    init_weights(generator, 0.02)
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(layer_norm.weight == 1)


def test_init_weights_keeps_spectral_norm_estimates_consistent():
    torch.manual_seed(0)
    discriminator = MultiScaleDiscriminator(TINY)
    init_weights(discriminator, 0.05)
    conv = discriminator.scales[0].net[2]                  # second 4x4 conv, spectral-normed
    raw = conv.parametrizations.weight.original
    assert raw.std().item() == pytest.approx(0.05, rel=0.1)
    discriminator.eval()                                   # no power iteration on access
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=0.05)


def test_small_random_chain_at_paper_init_is_finite_and_not_zero(small_random_networks):
    nets = small_random_networks
    x = images(2, 32, 64)
    style = nets["style"](x)
    sample = style["mu"] + torch.randn_like(style["mu"]) * (0.5 * style["logvar"]).exp()
    out = nets["generator"](nets["content"](x, 1), sample)
    assert torch.isfinite(out).all()
    assert out.abs().mean() > 1e-3                        # InstanceNorm/LayerNorm rescale


def test_small_random_gradients_flow_from_generator_to_encoder_inputs(small_random_networks):
    nets = small_random_networks
    x = images(1, 32, 48).requires_grad_(True)
    content = nets["content"](x, 0)
    style = nets["style"](x)["mu"]
    out = nets["generator"](content, style)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    used = {"content stem x": nets["content"].stems[0], "shared": nets["content"].shared,
            "style body": nets["style"].body, "style mu": nets["style"].mu,
            "generator": nets["generator"]}
    for name, module in used.items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
    # The style reaches the image through the modulation of the residual blocks.
    assert nets["generator"].blocks[0].mod1.mlp[0].weight.grad.abs().sum() > 0


def test_small_random_generator_ignores_the_style_scale(small_random_networks):
    generator = small_random_networks["generator"]
    content, style = torch.randn(1, C, 8, 8), torch.randn(1, C, 8, 8)
    torch.testing.assert_close(generator(content, style), generator(content, 0.1 * style))
    assert torch.isfinite(generator(content, torch.zeros_like(style))).all()


def test_small_random_style_encoder_centring_takes_off_each_images_mean():
    from dataclasses import replace
    torch.manual_seed(0)
    plain = StyleEncoder(replace(TINY, style_centering="none"))
    centred = StyleEncoder(replace(TINY, style_centering="image"))
    centred.load_state_dict(plain.state_dict())
    x = images(2, 32, 48)
    raw, out = plain(x), centred(x)
    expected = raw["mu"] - raw["mu"].mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(out["mu"], expected)
    torch.testing.assert_close(out["mu"].mean(dim=(2, 3)), torch.zeros(2, C), atol=1e-6, rtol=0)
    # The mean is per image: the second image's pixels do not move the first's.
    torch.testing.assert_close(centred(x[:1])["mu"], out["mu"][:1])
    torch.testing.assert_close(out["logvar"], raw["logvar"])
    assert raw["mu"].mean(dim=(2, 3)).abs().max() > 1e-6


def test_small_random_networks_accept_channels_last(small_random_networks):
    nets = small_random_networks
    x = images(2, 32, 48)
    expected = nets["generator"](nets["content"](x, 0), nets["style"](x)["mu"])
    x_cl = x.to(memory_format=torch.channels_last)
    out = nets["generator"](nets["content"](x_cl, 0), nets["style"](x_cl)["mu"])
    torch.testing.assert_close(out, expected)
    nets["content_d"].eval()  # in training mode every call runs a power iteration
    torch.testing.assert_close(nets["content_d"](nets["content"](x_cl, 0)),
                               nets["content_d"](nets["content"](x, 0)))


def test_paper_config_parameter_counts_are_sane(capsys):
    cfg = ModelConfig()
    counts = {
        "content encoder (both domains)": ContentEncoder(cfg),
        "style encoder (one domain)": StyleEncoder(cfg),
        "generator (one domain)": Generator(cfg),
        "image discriminator (one domain)": MultiScaleDiscriminator(cfg),
        "content discriminator": ContentDiscriminator(cfg),
    }
    counts = {name: sum(p.numel() for p in net.parameters()) for name, net in counts.items()}
    with capsys.disabled():
        print("\nMGUIT paper-config parameter counts (millions):")
        for name, count in counts.items():
            print(f"  {name:34s} {count / 1e6:6.2f}")
    for count in counts.values():
        assert 1e6 < count < 20e6
