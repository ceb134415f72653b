"""The transformer denoiser: shapes, token layout, zero-initialised output, conditioning, learning."""

from __future__ import annotations

import torch

from pccd_hpc.config import DiTConfig, RunConfig, get_preset
from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.dit import DiT
from pccd_hpc.model.factory import build_denoiser


def _tiny() -> DiT:
    torch.manual_seed(0)
    return DiT(DiTConfig(width=32, depth=2, heads=2, patch_points=4, element_emb_dim=8))


def test_tokens_are_consecutive_point_rows_and_round_trip() -> None:
    model = _tiny()
    x = torch.randn(2, 3, 128, 3)
    tokens = model.to_tokens(x)
    assert tokens.shape == (2, 32, 36)
    # token 1 holds point rows 4..7, each row as (channel, column) values
    assert torch.equal(tokens[1, 1, :9], x[1, :, 4, :].reshape(-1))
    assert torch.equal(model.from_tokens(tokens), x)


def test_output_shape_and_adaln_zero_start(cond4: Conditions) -> None:
    model = _tiny()
    out = model(torch.randn(4, 3, 128, 3), torch.tensor([0, 10, 500, 999]), cond4)
    assert out.shape == (4, 3, 128, 3)
    assert torch.count_nonzero(out) == 0  # the head starts at zero, as in DiT's adaLN-Zero


def test_conditions_and_time_change_the_output(cond4: Conditions) -> None:
    model = _tiny()
    for p in model.parameters():  # leave the zero start so every path carries signal
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(4, 3, 128, 3)
    t = torch.full((4,), 100)
    base = model(x, t, cond4)
    other = Conditions(cond4.element_z.flip(0), cond4.band_gap, cond4.magnetic)
    assert not torch.allclose(base, model(x, t, other))
    assert not torch.allclose(base, model(x, t + 400, cond4))


def test_fits_a_fixed_batch(cond4: Conditions) -> None:
    model = _tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, target, t = torch.randn(4, 3, 128, 3), torch.randn(4, 3, 128, 3), torch.tensor([1, 2, 3, 4])
    losses = []
    for _ in range(60):
        loss = (model(x, t, cond4) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_factory_and_config_round_trip() -> None:
    config = get_preset("dit-cpu")
    assert config.denoiser == "dit" and isinstance(build_denoiser(config), DiT)
    again = RunConfig.from_dict(config.to_dict())
    assert again == config
    assert RunConfig.from_dict({}).denoiser == "unet"  # checkpoints written before the DiT load as U-Nets
