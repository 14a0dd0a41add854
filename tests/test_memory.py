"""ClassAwareMemory against the paper's equations, computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mguit.memory import ClassAwareMemory

E = math.e


def two_item_memory(**kwargs) -> ClassAwareMemory:
    """2 items, C = 2: item 0 in group 'car', item 1 in group 'background'."""
    mem = ClassAwareMemory(2, {"car": 1, "background": 1}, **kwargs)
    mem.keys.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    mem.values[0].copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))      # v^x
    mem.values[1].copy_(torch.tensor([[0.6, 0.8], [1.0, 0.0]]))      # v^y
    return mem


def pixels(*vectors) -> torch.Tensor:
    """Pixels (C = 2) as a (1, 2, 1, P) feature map."""
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, 2, 1, len(vectors))


def test_read_all_items_matches_eq_2_to_4_by_hand():
    mem = two_item_memory()
    c = pixels((1.0, 0.0), (0.0, 2.0), (1.0, 1.0))
    out = mem.read(c, domain=1)
    # p1: cos = (1, 0) -> alpha = (e, 1) / (e + 1)
    a = E / (E + 1)
    p1 = [a * 0.6 + (1 - a) * 1.0, a * 0.8]
    # p2: cos = (0, 1) -> alpha = (1, e) / (1 + e)
    b = 1 / (1 + E)
    p2 = [b * 0.6 + (1 - b) * 1.0, b * 0.8]
    # p3: cos = (1/sqrt2, 1/sqrt2) -> alpha = (1/2, 1/2)
    p3 = [0.8, 0.4]
    expected = torch.tensor([p1, p2, p3]).T.reshape(1, 2, 1, 3)
    torch.testing.assert_close(out, expected)


def test_training_read_addresses_only_the_pixels_class_items():
    mem = two_item_memory()
    c = pixels((1.0, 0.0), (1.0, 0.0))
    mask = torch.tensor([[[0, 1]]])            # pixel 1: car, pixel 2: background
    out = mem.read(c, domain=1, mask=mask)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.6, 0.8]))   # v^y of item 0 only
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([1.0, 0.0]))   # v^y of item 1 only
    # Test time (no mask): the same pixels mix both items.
    free = mem.read(c, domain=1)
    assert not torch.allclose(free[0, :, 0, 1], torch.tensor([1.0, 0.0]))


def test_single_memory_ignores_masks():
    mem = two_item_memory(variant="single")
    c = pixels((1.0, 0.0))
    torch.testing.assert_close(mem.read(c, 1, mask=torch.tensor([[[1]]])), mem.read(c, 1))


def test_update_matches_eq_5_and_6_by_hand_with_class_masks():
    mem = two_item_memory()
    cx = pixels((1.0, 0.0), (0.0, 2.0), (1.0, 1.0))
    sx = pixels((1.0, 1.0), (2.0, 0.0), (0.0, 3.0))
    mx = torch.tensor([[[0, 0, 1]]])           # pixels 1, 2: car; pixel 3: background
    cy = pixels((3.0, 4.0))
    sy = pixels((0.0, -1.0))
    my = torch.tensor([[[1]]])                 # the only y pixel is background
    mem.update(cx, sx, cy, sy, mx, my)

    # Item 0 (car) sees x pixels 1 and 2 with cosines 1 and 0: beta = (e, 1) / (e + 1).
    b1, b2 = E / (E + 1), 1 / (E + 1)
    k0 = torch.tensor([1.0, 0.0]) + b1 * torch.tensor([1.0, 0.0]) + b2 * torch.tensor([0.0, 2.0])
    v0x = torch.tensor([0.0, 1.0]) + b1 * torch.tensor([1.0, 1.0]) + b2 * torch.tensor([2.0, 0.0])
    v0y = torch.tensor([0.6, 0.8])             # no car pixel in y: unchanged
    # Item 1 (background) sees one x pixel and one y pixel: each beta = 1.
    k1 = torch.tensor([0.0, 1.0]) + torch.tensor([1.0, 1.0]) + torch.tensor([3.0, 4.0])
    v1x = torch.tensor([1.0, 0.0]) + torch.tensor([0.0, 3.0])
    v1y = torch.tensor([1.0, 0.0]) + torch.tensor([0.0, -1.0])

    unit = lambda v: v / v.norm()              # noqa: E731
    torch.testing.assert_close(mem.keys, torch.stack([unit(k0), unit(k1)]))
    torch.testing.assert_close(mem.values[0], torch.stack([unit(v0x), unit(v1x)]))
    torch.testing.assert_close(mem.values[1], torch.stack([unit(v0y), unit(v1y)]))


def test_update_of_an_unlabeled_target_writing_values_only_by_hand():
    """A class-aware memory, x masked, y without a mask and without key writes: y's pixel
    reaches both items' y values (softmax over its one pixel: beta = 1 each), no key."""
    mem = two_item_memory()
    cx = pixels((1.0, 0.0))
    sx = pixels((0.0, 2.0))
    mx = torch.tensor([[[0]]])                 # the x pixel is a car
    cy = pixels((3.0, 4.0))
    sy = pixels((0.0, -1.0))
    mem.update(cx, sx, cy, sy, mx, None, write_keys=(True, False))
    unit = lambda v: v / v.norm()              # noqa: E731
    k0 = torch.tensor([1.0, 0.0]) + torch.tensor([1.0, 0.0])
    torch.testing.assert_close(mem.keys, torch.stack([unit(k0), torch.tensor([0.0, 1.0])]))
    v0y = torch.tensor([0.6, 0.8]) + torch.tensor([0.0, -1.0])
    v1y = torch.tensor([1.0, 0.0]) + torch.tensor([0.0, -1.0])
    torch.testing.assert_close(mem.values[1], torch.stack([unit(v0y), unit(v1y)]))


def test_update_softmax_over_all_pixels_without_masks():
    mem = two_item_memory(variant="single")
    cx = pixels((1.0, 0.0), (0.0, 1.0))
    sx = pixels((1.0, 0.0), (0.0, 1.0))
    zeros = torch.zeros(1, 2, 1, 1)
    mem.update(cx, sx, zeros, zeros)
    # Item 0: cosines (1, 0) -> beta = (e, 1)/(e+1); the zero y pixel adds 0 to the key.
    b1, b2 = E / (E + 1), 1 / (E + 1)
    k0 = torch.tensor([1.0 + b1, b2])
    torch.testing.assert_close(mem.keys[0], k0 / k0.norm())


def test_memory_is_buffers_not_parameters_and_moves_with_the_module():
    mem = ClassAwareMemory(4, {"car": 2, "background": 3})
    assert list(mem.parameters()) == []
    state = mem.state_dict()
    assert set(state) == {"keys", "values"}
    assert state["keys"].shape == (5, 4) and state["values"].shape == (2, 5, 4)
    torch.testing.assert_close(mem.keys.norm(dim=1), torch.ones(5))
    mem = mem.to(torch.float64)
    assert mem.keys.dtype == torch.float64


def test_contrastive_loss_matches_eq_8_by_hand():
    mem = two_item_memory()
    c = pixels((1.0, 0.0), (1.0, 1.0))
    s = pixels((0.0, 1.0), (1.0, 0.0))
    tau = mem.temperature
    losses = mem.feature_loss(c, s, domain=0)
    # Keys: p1 cos (1, 0), nearest item 0; p2 cos (r, r) ties -> argmax picks item 0.
    r = 1 / math.sqrt(2)
    lk1 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0)))
    lk2 = -math.log(math.exp(r / tau) / (2 * math.exp(r / tau)))
    assert losses["key"].item() == pytest.approx((lk1 + lk2) / 2, rel=1e-5)
    # Values of domain x: v^x = (0,1), (1,0). s1 = (0,1) -> cos (1, 0); s2 = (1,0) -> cos (0, 1).
    lv = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 1))
    assert losses["value"].item() == pytest.approx(lv, abs=1e-6)


def test_contrastive_positive_is_restricted_to_the_class_in_training():
    mem = two_item_memory()
    c = pixels((1.0, 0.0))
    tau = mem.temperature
    # The pixel is background: its positive is item 1 (cos 0), although item 0 is nearer.
    loss = mem.feature_loss(c, c, domain=0, mask=torch.tensor([[[1]]]))["key"]
    expected = -math.log(1 / (math.exp(1 / tau) + 1))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_triplet_loss_by_hand():
    mem = two_item_memory(loss="triplet", triplet_margin=1.0)
    c = pixels((1.0, 0.0), (3.0, 4.0))
    loss = mem.feature_loss(c, c, domain=0)["key"]
    # p1: cos (1, 0): d+ = 0, d- = 2 -> max(0, 0 - 2 + 1) = 0.
    # p2: unit (0.6, 0.8): cos (0.6, 0.8): positive item 1, d+ = 0.4, d- = 0.8 -> 0.6.
    assert loss.item() == pytest.approx(0.3, rel=1e-5)


def test_feature_loss_gradient_reaches_features_not_memory():
    mem = ClassAwareMemory(8, {"car": 2, "background": 2})
    c = torch.randn(2, 8, 3, 4, requires_grad=True)
    s = torch.randn(2, 8, 3, 4, requires_grad=True)
    mask = torch.randint(0, 2, (2, 3, 4))
    out = mem.feature_loss(c, s, 1, mask)
    (out["key"] + out["value"] + mem.read(c, 1, mask).sum()).backward()
    assert c.grad.abs().sum() > 0 and s.grad.abs().sum() > 0
    assert mem.keys.grad is None and mem.values.grad is None


def test_batched_read_and_loss_equal_per_image_loop():
    torch.manual_seed(0)
    mem = ClassAwareMemory(6, {"person": 2, "car": 1, "background": 3})
    c = torch.randn(3, 6, 4, 5)
    s = torch.randn(3, 6, 4, 5)
    mask = torch.randint(0, 3, (3, 4, 5))
    batched = mem.read(c, 0, mask)
    looped = torch.cat([mem.read(c[i:i + 1], 0, mask[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, looped)
    loss = mem.feature_loss(c, s, 1, mask)["key"]
    per_image = torch.stack([mem.feature_loss(c[i:i + 1], s[i:i + 1], 1, mask[i:i + 1])["key"]
                             for i in range(3)]).mean()
    torch.testing.assert_close(loss, per_image)


def test_batched_update_equals_explicit_loop_over_items_and_pixels():
    torch.manual_seed(1)
    groups = {"person": 2, "car": 1, "background": 2}
    mem = ClassAwareMemory(3, groups)
    c = [torch.randn(2, 3, 2, 3) for _ in range(2)]
    s = [torch.randn(2, 3, 2, 3) for _ in range(2)]
    m = [torch.randint(0, 3, (2, 2, 3)) for _ in range(2)]
    keys, values = mem.keys.clone(), mem.values.clone()
    group_of_item = [0, 0, 1, 2, 2]
    for n in range(5):
        new_k = keys[n].clone()
        for d in range(2):
            feats = c[d].permute(0, 2, 3, 1).reshape(-1, 3)
            styles = s[d].permute(0, 2, 3, 1).reshape(-1, 3)
            sel = m[d].reshape(-1) == group_of_item[n]
            if not sel.any():
                continue
            cos = F.cosine_similarity(feats[sel], keys[n][None], dim=1)
            beta = cos.exp() / cos.exp().sum()
            new_k += (beta[:, None] * feats[sel]).sum(0)
            values[d, n] = F.normalize(values[d, n] + (beta[:, None] * styles[sel]).sum(0), dim=0)
        keys[n] = F.normalize(new_k, dim=0)
    mem.update(c[0], s[0], c[1], s[1], m[0], m[1])
    torch.testing.assert_close(mem.keys, keys)
    torch.testing.assert_close(mem.values, values)


def test_read_temperature_divides_every_cosine_by_hand():
    mem = two_item_memory(read_temperature=0.5)
    c = pixels((1.0, 0.0))
    # cos = (1, 0) / 0.5 -> alpha = (e^2, 1) / (e^2 + 1)
    a = E**2 / (E**2 + 1)
    expected = torch.tensor([a * 0.6 + (1 - a) * 1.0, a * 0.8]).reshape(1, 2, 1, 1)
    torch.testing.assert_close(mem.read(c, domain=1), expected)
    # T = 1 is eq 2 exactly, the paper's read.
    paper = two_item_memory(read_temperature=1.0)
    torch.testing.assert_close(paper.read_weights(c)[0, 0], torch.tensor([E, 1.0]) / (E + 1))


def test_update_temperature_sharpens_eq_5_over_pixels_by_hand():
    mem = two_item_memory(update_temperature=0.5)
    cx = pixels((1.0, 0.0), (0.0, 2.0))
    sx = pixels((1.0, 1.0), (2.0, 0.0))
    mx = torch.tensor([[[0, 0]]])
    cy = pixels((0.0, 1.0))
    sy = pixels((0.0, 1.0))
    my = torch.tensor([[[1]]])
    mem.update(cx, sx, cy, sy, mx, my)
    # Item 0: cosines (1, 0) / 0.5 over its two pixels -> beta = (e^2, 1) / (e^2 + 1).
    b1, b2 = E**2 / (E**2 + 1), 1 / (E**2 + 1)
    k0 = torch.tensor([1.0, 0.0]) + b1 * torch.tensor([1.0, 0.0]) + b2 * torch.tensor([0.0, 2.0])
    torch.testing.assert_close(mem.keys[0], F.normalize(k0, dim=0))


def test_normalized_writes_add_unit_features_by_hand():
    mem = two_item_memory(write_features="normalized")
    cx = pixels((3.0, 4.0))
    sx = pixels((0.0, 5.0))
    mx = torch.tensor([[[0]]])
    cy = pixels((0.0, 1.0))
    sy = pixels((1.0, 0.0))
    my = torch.tensor([[[1]]])
    mem.update(cx, sx, cy, sy, mx, my)
    # One pixel each: beta = 1; the features are written as unit vectors.
    torch.testing.assert_close(mem.keys[0], F.normalize(torch.tensor([1.0 + 0.6, 0.8]), dim=0))
    torch.testing.assert_close(mem.values[0, 0], F.normalize(torch.tensor([0.0, 2.0]), dim=0))
    raw = two_item_memory()
    raw.update(cx, sx, cy, sy, mx, my)
    torch.testing.assert_close(raw.keys[0], F.normalize(torch.tensor([4.0, 4.0]), dim=0))


def test_class_balanced_loss_weights_each_group_alike():
    mem = two_item_memory(loss_reduction="class_balanced")
    pixel = two_item_memory()
    # Three background pixels and one car pixel, each with its own per-pixel loss.
    c = pixels((1.0, 0.0), (0.0, 1.0), (0.3, 1.0), (1.0, 1.0))
    mask = torch.tensor([[[0, 1, 1, 1]]])
    per_pixel = pixel._item_loss(c, pixel.keys, pixel.allowed_items(mask))[0]
    expected = (per_pixel[0] + per_pixel[1:].mean()) / 2
    torch.testing.assert_close(mem.feature_loss(c, c, 0, mask)["key"], expected)
    torch.testing.assert_close(pixel.feature_loss(c, c, 0, mask)["key"], per_pixel.mean())


def test_read_statistics_count_own_mass_and_nearest_key_by_hand():
    mem = two_item_memory()
    c = pixels((1.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    mask = torch.tensor([[[0, 1, 1]]])          # a car pixel, two background pixels
    stats = mem.read_statistics(c, mask)
    a = E / (E + 1)                             # weight on the nearer item
    torch.testing.assert_close(stats["own_mass"], torch.tensor([a, (1 - a) + a],
                                                               dtype=torch.float64))
    torch.testing.assert_close(stats["nearest_correct"],
                               torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(stats["pixels"], torch.tensor([1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("kwargs", [{"read_temperature": 0}, {"update_temperature": -1},
                                    {"write_features": "unit"}, {"loss_reduction": "sum"}])
def test_bad_memory_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        ClassAwareMemory(2, {"car": 1, "background": 1}, **kwargs)


def test_nearest_assignment_splits_a_class_between_its_items_by_hand():
    # Two car items, keys (1, 0) and (0.6, 0.8); two car pixels, each nearer one of them.
    def memory(assignment: str) -> ClassAwareMemory:
        mem = ClassAwareMemory(2, {"car": 2, "background": 1}, update_assignment=assignment)
        mem.keys.copy_(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, -1.0]]))
        mem.values.copy_(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, -1.0]]).expand(2, 3, 2))
        return mem

    cx = pixels((1.0, 0.0), (0.0, 1.0))
    sx = pixels((1.0, 0.0), (0.0, 1.0))
    mx = torch.tensor([[[0, 0]]])
    cy = pixels((0.0, -1.0))
    my = torch.tensor([[[1]]])
    nearest = memory("nearest")
    nearest.update(cx, sx, cy, cy, mx, my)
    # Pixel 1 (cos 1 vs 0.6) writes to item 0 only; pixel 2 (cos 0 vs 0.8) to item 1 only.
    torch.testing.assert_close(nearest.keys[0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(nearest.keys[1], F.normalize(torch.tensor([0.6, 1.8]), dim=0))
    torch.testing.assert_close(nearest.values[0, 1], F.normalize(torch.tensor([0.6, 1.8]), dim=0))
    # Eq 5's softmax (T = 1): each item takes both pixels; item 0 with beta (e, 1) / (e + 1).
    softmax = memory("softmax")
    softmax.update(cx, sx, cy, cy, mx, my)
    b = torch.tensor([E, 1.0]) / (E + 1)
    torch.testing.assert_close(softmax.keys[0],
                               F.normalize(torch.tensor([1.0 + b[0], b[1]]), dim=0))
    with pytest.raises(ValueError, match="update_assignment"):
        ClassAwareMemory(2, {"car": 1, "background": 1}, update_assignment="hard")
