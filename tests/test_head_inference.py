"""The head's inference path: the three region crops in one forward (grouped convolutions),
equal to the per-region nets, and never serving stale weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.core.vocabulary import REGIONS
from models.kinds.head import FusedHeadNet, HeadModel, crops_at_max_side, extract_crops
from models.transforms import resize_max_side


def randomised_model(seed: int = 0) -> HeadModel:
    torch.manual_seed(seed)
    model = HeadModel()
    for module in model.net.modules():  # fresh batch norms are the identity; make them matter
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    model.net.eval()
    return model


def test_fused_net_equals_the_per_region_nets():
    model = randomised_model()
    crops = torch.randn(len(REGIONS), 4, 3, 32, 32)  # R×B×3×S×S
    expected = model.net(crops)
    fused = FusedHeadNet(model.net)(crops.transpose(0, 1).reshape(4, -1, 32, 32))
    assert fused.shape == expected.shape == (len(REGIONS), 4, 5)
    assert torch.allclose(fused, expected, atol=1e-5)


def test_predict_probs_uses_one_forward_and_matches_the_regions_nets():
    model = randomised_model()
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    boxes = {"face": [200, 100, 440, 400], "tzone": [260, 150, 380, 300], "jaw": [220, 300, 420, 400]}
    calls = []
    handle = model.fused_net().register_forward_hook(lambda *args: calls.append(1))
    probs = model.predict_probs(image, boxes)
    handle.remove()
    assert len(calls) == 1
    crops = extract_crops(image, [boxes[r] for r in REGIONS], 32, model.config["context"])
    with torch.no_grad():
        expected = model.net(crops.unsqueeze(1)).softmax(-1)[:, 0]
    for i, region in enumerate(REGIONS):
        assert np.allclose(probs[region], expected[i].tolist(), atol=1e-5)


def assert_rebuilt_to_match(model, stale, net) -> None:
    """``model.fused_net()`` is a new fused net, not ``stale``, that gives what ``net`` gives."""
    crops = torch.randn(len(REGIONS), 1, 3, 32, 32)
    rebuilt = model.fused_net()
    assert rebuilt is not stale
    assert torch.allclose(rebuilt(crops.transpose(0, 1).reshape(1, -1, 32, 32)), net(crops), atol=1e-5)


def test_the_fused_net_follows_weight_changes():
    model = randomised_model()
    first = model.fused_net()
    assert model.fused_net() is first  # built once while the weights stay
    other = randomised_model(seed=1)
    model.net.load_state_dict(other.net.state_dict())
    assert_rebuilt_to_match(model, first, other.net)


def test_the_fused_net_follows_a_replaced_net():
    model = randomised_model()
    first = model.fused_net()
    model.net = randomised_model(seed=1).net
    assert_rebuilt_to_match(model, first, model.net)


def test_the_fused_net_follows_a_state_dict_loaded_with_assign():
    """``load_state_dict(..., assign=True)`` puts new tensors in the net instead of writing into its own:
    the old ones keep their versions, and the new ones may have the same."""
    model = randomised_model()
    first = model.fused_net()
    other = randomised_model(seed=1)
    old_weights = [*model.net.parameters()]
    model.net.load_state_dict(other.net.state_dict(), assign=True)
    assert all(new is not old for new, old in zip(model.net.parameters(), old_weights))
    assert_rebuilt_to_match(model, first, other.net)


def test_the_fused_net_follows_a_replaced_parameter():
    model = randomised_model()
    first = model.fused_net()
    conv = next(m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d))
    conv.weight = torch.nn.Parameter(torch.randn_like(conv.weight))
    assert_rebuilt_to_match(model, first, model.net)


def reference_crops(image: torch.Tensor, boxes, size: int, context: float) -> torch.Tensor:
    """The crops' definition in plain torch: the image as floats in [-0.5, 0.5], the boxes grown by
    ``context`` times their size (at least 1 px) on every side, roi_align."""
    from torchvision.ops import roi_align

    b = torch.as_tensor(boxes, dtype=torch.float32)
    w = (b[:, 2] - b[:, 0]).clamp(min=1.0)
    h = (b[:, 3] - b[:, 1]).clamp(min=1.0)
    grown = b + torch.stack([-w, -h, w, h], dim=1) * context
    x = image.float().unsqueeze(0) / 255.0 - 0.5
    return roi_align(x, [grown], output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def test_crops_are_their_definition_bit_for_bit():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    chw = torch.from_numpy(image).permute(2, 0, 1)
    for context in (0.1, 0.0, 0.137):
        for _ in range(20):
            x0, y0 = rng.uniform(-100, 600), rng.uniform(-100, 450)
            boxes = [[x0, y0, x0 + rng.uniform(0.2, 300), y0 + rng.uniform(0.2, 300)] for _ in REGIONS]
            expected = reference_crops(chw, boxes, 32, context)
            assert torch.equal(extract_crops(image, boxes, 32, context), expected)
    read_only = image[::2, ::2]
    read_only.flags.writeable = False
    assert torch.equal(extract_crops(read_only, boxes, 16, 0.1),
                       reference_crops(torch.from_numpy(read_only.copy()).permute(2, 0, 1), boxes, 16, 0.1))
    floats = chw.float()
    extract_crops(floats, boxes, 16, 0.1)
    assert torch.equal(floats, chw.float())  # the caller's image is not scaled in place


@pytest.mark.parametrize(("shape", "boxes"), [
    ((960, 1280, 3), [[400, 300, 800, 800], [450, 350, 750, 600], [450, 650, 750, 800]]),  # downscaled
    ((1137, 910, 3), [[-50, 700, 600, 1300], [100, 800, 500, 1000], [80, 1000, 560, 1200]]),  # past the edges
    ((480, 640, 3), [[200, 100, 440, 400], [260, 150, 380, 300], [220, 300, 420, 400]]),  # not downscaled
    ((1500, 700, 3), [[900, 900, 990, 990], [910, 910, 950, 940], [910, 950, 980, 985]]),  # outside the photo
])
def test_window_crops_equal_the_crops_of_the_whole_downscaled_photo(shape, boxes):
    image = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    small, scale = resize_max_side(image, 640)
    expected = extract_crops(small, [[v * scale for v in box] for box in boxes], 32, 0.1)
    got = crops_at_max_side(image, boxes, 640, 32, 0.1)
    assert got.shape == expected.shape == (3, 3, 32, 32)
    assert (got - expected).abs().max() <= 1.5 / 255  # at most a rounding step of the 8-bit resize
    assert (got - expected).abs().mean() < 1e-4


def test_the_head_sees_a_reduced_decode_as_it_sees_the_whole_photo():
    """The classify path decodes a large JPEG at 1/2 (DCT scaling); the head's crops of it must be
    those it was trained on (the whole photo resized to max_side) up to the decoders' rounding."""
    import io

    from PIL import Image

    from models.gate import get_face_gate
    from models.geometry import landmark_regions
    from models.intake import decode_image
    from tests.conftest_paths import TEST_DATA

    obama = Image.open(TEST_DATA / "faces" / "obama.jpg")
    buffer = io.BytesIO()
    obama.resize((obama.width * 2, obama.height * 2), Image.LANCZOS).save(buffer, "JPEG", quality=90)
    gate, config = get_face_gate(), HeadModel().config
    result, reduced = gate.decode_and_check(buffer.getvalue())
    assert result.ok and result.scale == 2
    boxes = landmark_regions(reduced, result)
    crops = crops_at_max_side(reduced, [boxes[r] for r in REGIONS], config["max_side"], config["crop_size"],
                              config["context"])
    whole, _ = resize_max_side(decode_image(buffer.getvalue()), config["max_side"])  # what training sees
    scale = whole.shape[0] / reduced.shape[0]
    expected = extract_crops(whole, [[v * scale for v in boxes[r]] for r in REGIONS], config["crop_size"],
                             config["context"])
    assert (crops - expected).abs().mean() < 0.01  # measured 0.0008; boxes 5 px off give 0.06
