"""The head's training targets: soft targets from where a person's survey score sits in their type."""

from types import SimpleNamespace

import pytest
import torch

from models.kinds.head import HeadNet, head_loss, ordinal_targets, position_targets, survey_positions


def person(key, type_index, score):
    return SimpleNamespace(person_key=key, type_index=type_index, survey_score=score)


def test_survey_positions_move_each_person_towards_the_neighbouring_type_they_are_closest_to():
    samples = [person("a", 0, 9.0), person("b", 0, 8.0), person("c", 1, 7.0), person("c", 1, 7.0),
               person("d", 1, 6.0), person("e", 1, 5.0), person("f", 2, None)]
    positions = survey_positions(samples)
    assert positions[0] == pytest.approx(-0.25) and positions[1] == pytest.approx(0.25)
    # c (two photos, one position), d, e: the best-scored Beta sits towards Alpha, the worst towards Gamma
    assert positions[2] == positions[3] == pytest.approx(1 - 1 / 3)
    assert positions[4] == pytest.approx(1.0) and positions[5] == pytest.approx(1 + 1 / 3)
    assert positions[6] == 2.0  # no survey score: the type itself


def test_position_targets_are_distributions_centred_on_the_position():
    targets = position_targets(torch.tensor([0.0, 1.5, 4.0]), sigma=0.8)
    assert torch.allclose(targets.sum(dim=1), torch.ones(3))
    assert targets[0].argmax() == 0 and targets[2].argmax() == 4
    assert targets[1, 1] == pytest.approx(targets[1, 2].item())  # half-way between Beta and Gamma
    assert targets[0, 1] > targets[0, 2] > targets[0, 3]  # falls off with the distance in types
    narrow = position_targets(torch.tensor([2.0]), sigma=0.1)
    assert torch.allclose(narrow, ordinal_targets(torch.tensor([2]), 0.0), atol=1e-6)


def test_head_loss_uses_position_targets_only_with_a_sigma():
    torch.manual_seed(0)
    net = HeadNet(width=4).eval()  # no dropout: the same logits for every call
    crops = torch.randn(3, 2, 3, 16, 16)
    off_type = torch.tensor([0.4, 3.0])  # 0.4 rounds to Alpha but leans towards Beta
    plain = head_loss(net, crops, off_type, smoothing=0.0, sigma=0.0)
    alpha = head_loss(net, crops, torch.tensor([0.0, 3.0]), smoothing=0.0, sigma=0.0)
    assert plain["loss_face"].item() == pytest.approx(alpha["loss_face"].item())
    soft = head_loss(net, crops, off_type, smoothing=0.0, sigma=0.8)
    assert soft["loss_face"].item() != pytest.approx(plain["loss_face"].item())


def test_score_loss_is_the_squared_error_of_the_region_points_weighted_expected_position():
    torch.manual_seed(0)
    net = HeadNet(width=4).eval()
    crops = torch.randn(3, 2, 3, 16, 16)
    positions = torch.tensor([0.5, 3.0])
    without = head_loss(net, crops, positions, sigma=0.8)
    assert "loss_score" not in without
    losses = head_loss(net, crops, positions, sigma=0.8, score_weight=2.0, region_points=(50.0, 40.0, 10.0))
    expected = (net(crops).softmax(-1) * torch.arange(5)).sum(-1)  # R×B expected type index
    combined = (0.5 * expected[0] + 0.4 * expected[1] + 0.1 * expected[2])
    assert losses["loss_score"].item() == pytest.approx(2.0 * ((combined - positions) ** 2).mean().item(), rel=1e-5)
    assert losses["loss_face"].item() == pytest.approx(without["loss_face"].item())  # the region losses stay


def test_score_loss_moves_the_served_score_towards_the_person():
    torch.manual_seed(0)
    net = HeadNet(width=4)
    crops = torch.randn(3, 8, 3, 16, 16)
    positions = torch.linspace(0, 4, 8)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.05)

    def score_error():
        with torch.no_grad():
            return head_loss(net.eval(), crops, positions, score_weight=1.0, sigma=0.8)["loss_score"].item()

    before = score_error()
    for _ in range(30):
        net.train()
        optimiser.zero_grad()
        head_loss(net, crops, positions, score_weight=1.0, sigma=0.0, smoothing=0.0)["loss_score"].backward()
        optimiser.step()
    assert score_error() < 0.5 * before
