"""The number of sites as a condition: the Conditions field, its embedding, the training prior and draws from it."""

from __future__ import annotations

import pytest
import torch

from pccd_hpc.config import tiny_preset
from pccd_hpc.model.conditioning import (
    MAX_CONDITIONED_SITES,
    SITES_NULL,
    ConditionEncoder,
    Conditions,
    conditions_from_batch,
    count_elements,
    draw_site_counts,
    site_count_histogram,
)
from pccd_hpc.model.factory import build_denoiser, site_encoder


def _cond(n_sites: list[int] | None = None) -> Conditions:
    z = torch.tensor([[8, 12, 22], [3, 3, 8], [26, 26, 26], [1, 6, 7]])
    sites = None if n_sites is None else torch.tensor(n_sites)
    return Conditions(z, torch.tensor([0, 1, 2, 3]), torch.zeros(4, dtype=torch.long), sites)


def test_conditions_carry_the_site_count_through_every_operation() -> None:
    assert torch.equal(_cond().n_sites, torch.full((4,), SITES_NULL))  # not given: withheld
    cond = _cond([5, 9, 1, 16])
    assert torch.equal(cond.null_like(0).n_sites, torch.zeros(4, dtype=torch.long))
    dropped = cond.dropped(torch.tensor([True, False, False, True]), magnetic_null=0)
    assert dropped.n_sites.tolist() == [0, 9, 1, 0]
    withheld = cond.without_sites(torch.tensor([False, True, False, False]))
    assert withheld.n_sites.tolist() == [5, 0, 1, 16]
    assert torch.equal(withheld.element_z, cond.element_z) and torch.equal(withheld.band_gap, cond.band_gap)
    assert cond.cat(_cond()).n_sites.tolist() == [5, 9, 1, 16, 0, 0, 0, 0]
    assert cond.select(slice(1, 3)).n_sites.tolist() == [9, 1]
    batch = {"element_z": cond.element_z, "band_gap_ev": torch.zeros(4), "n_sites": torch.tensor([5, 9, 1, 16])}
    assert conditions_from_batch(batch, 0, with_sites=True).n_sites.tolist() == [5, 9, 1, 16]
    assert conditions_from_batch(batch, 0).n_sites.tolist() == [0, 0, 0, 0]  # a model without the condition


def test_count_elements_ignores_null_and_repeated_slots() -> None:
    z = torch.tensor([[8, 12, 22], [3, 3, 8], [26, 26, 26], [26, 0, 0], [0, 0, 0], [8, 3, 8]])
    assert count_elements(z).tolist() == [3, 2, 1, 1, 0, 2]


def test_site_histogram_counts_crystals_by_elements_and_sites() -> None:
    z = torch.tensor([[8, 12, 22], [3, 3, 8], [3, 3, 8], [26, 26, 26]])
    hist = site_count_histogram(torch.tensor([5, 4, 4, 2]), z)
    assert hist.shape == (4, MAX_CONDITIONED_SITES + 1)
    assert hist.sum() == 4
    assert hist[3, 5] == 1 and hist[2, 4] == 2 and hist[1, 2] == 1


def test_draws_follow_the_row_of_the_number_of_elements() -> None:
    prior = torch.zeros(4, MAX_CONDITIONED_SITES + 1)
    prior[1, 2], prior[2, 6], prior[2, 8], prior[3, 12] = 5, 1, 3, 2
    z = torch.tensor([[26, 26, 26], [3, 3, 8], [8, 12, 22]]).repeat(200, 1)
    gen = torch.Generator().manual_seed(0)
    drawn = draw_site_counts(prior, z, gen).view(200, 3)
    assert set(drawn[:, 0].tolist()) == {2} and set(drawn[:, 2].tolist()) == {12}
    assert set(drawn[:, 1].tolist()) == {6, 8}
    assert 0.6 < (drawn[:, 1] == 8).float().mean() < 0.9  # 3 : 1
    again = draw_site_counts(prior, z, torch.Generator().manual_seed(0)).view(200, 3)
    assert torch.equal(drawn, again)  # seeded: reproducible


def test_an_empty_row_falls_back_to_crystals_with_enough_sites_and_an_empty_prior_is_refused() -> None:
    prior = torch.zeros(4, MAX_CONDITIONED_SITES + 1)
    prior[1, 1], prior[2, 4] = 10, 1  # no ternaries in the training data
    drawn = draw_site_counts(prior, torch.tensor([[8, 12, 22]] * 50), torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {4}  # never 1 site for 3 elements
    with pytest.raises(ValueError, match="site-count distribution"):
        draw_site_counts(torch.zeros(4, MAX_CONDITIONED_SITES + 1), torch.tensor([[8, 0, 0]]))


def test_the_count_enters_through_a_zero_start_projection_and_its_null_row_stays_zero() -> None:
    torch.manual_seed(0)
    plain = ConditionEncoder(16, 8, 0)
    with_sites = ConditionEncoder(16, 8, 0, site_condition=True)
    missing, unexpected = with_sites.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["site_count_prior", "site_proj.weight", "sites.weight"] and not unexpected
    cond = _cond([5, 9, 1, 16])
    assert torch.allclose(plain(cond), with_sites(cond))  # the projection starts at zero: the count-free encoder
    optimizer = torch.optim.SGD(with_sites.parameters(), lr=0.1)
    with_sites(cond).pow(2).sum().backward()
    optimizer.step()
    assert torch.count_nonzero(with_sites.sites.weight[SITES_NULL]) == 0  # withheld stays the count-free input
    assert torch.count_nonzero(with_sites.site_proj.weight) > 0
    assert not torch.allclose(with_sites(_cond([5, 5, 5, 5])), with_sites(_cond([9, 9, 9, 9])))


def test_the_site_weights_get_their_own_learning_rate() -> None:
    from pccd_hpc.train.loop import parameter_groups

    config = tiny_preset()
    plain = build_denoiser(config)
    assert [len(g["params"]) for g in parameter_groups(plain, 1e-3, 10.0)] == [len(list(plain.parameters()))]
    net = build_denoiser(config.with_overrides({"model": {"site_condition": True}}))
    rest, site = parameter_groups(net, 1e-3, 10.0)
    assert site["lr"] == pytest.approx(1e-2) and rest["lr"] == pytest.approx(1e-3)
    assert {id(p) for p in site["params"]} == {id(net.cond_embed.sites.weight), id(net.cond_embed.site_proj.weight)}
    assert len(rest["params"]) + 2 == len(list(net.parameters()))


def test_networks_find_their_site_encoder_only_when_built_with_the_condition() -> None:
    config = tiny_preset()
    assert site_encoder(build_denoiser(config)) is None
    for denoiser in ("unet", "dit"):
        conditioned = config.with_overrides({"model": {"site_condition": True}, "denoiser": denoiser})
        net = build_denoiser(conditioned)
        encoder = site_encoder(net)
        assert encoder is not None and "cond_embed.site_count_prior" in net.state_dict()
        x, t = torch.randn(2, 3, 128, 3), torch.tensor([10, 500])
        cond = Conditions(torch.tensor([[8, 12, 0], [3, 8, 0]]), torch.zeros(2, dtype=torch.long),
                          torch.zeros(2, dtype=torch.long), torch.tensor([4, 6]))
        assert net(x, t, cond).shape == (2, 3, 128, 3)
