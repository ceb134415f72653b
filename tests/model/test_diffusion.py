"""Schedule, forward process, loss and samplers checked against independent formulas."""

from __future__ import annotations

import math

import pytest
import torch

from pccd_hpc.config import DiffusionConfig
from pccd_hpc.model.conditioning import Conditions, band_gap_class
from pccd_hpc.model.diffusion import (LossInputs, NoiseSchedule, diffusion_loss, from_model_space, sample_training_noise,
                                      to_model_space)
from pccd_hpc.model.samplers import DDIMSampler, DDPMSampler, guided_eps


def test_linear_schedule_matches_paper() -> None:
    s = NoiseSchedule(DiffusionConfig())
    assert s.betas.shape == (1000,)
    assert math.isclose(s.betas[0].item(), 1e-4) and math.isclose(s.betas[-1].item(), 0.02)
    manual = 1.0
    for beta in s.betas[:10].tolist():
        manual *= 1 - beta
    assert math.isclose(s.alphas_bar[9].item(), manual, rel_tol=1e-12)
    assert s.alphas_bar[-1] < 1e-4  # x_T is (nearly) pure noise


def test_cosine_schedule_is_monotone() -> None:
    s = NoiseSchedule(DiffusionConfig(schedule="cosine"))
    assert torch.all(s.alphas_bar[1:] < s.alphas_bar[:-1])
    assert 0 < s.betas.min() and s.betas.max() <= 0.999


def test_q_sample_equals_iterated_one_step_noising() -> None:
    """Eq. 3 (closed form) has the mean and variance of iterating eq. 2 t times."""
    s = NoiseSchedule(DiffusionConfig())
    t = 300
    x0 = torch.full((20000,), 0.7, dtype=torch.float64)
    x = x0.clone()
    gen = torch.Generator().manual_seed(1)
    for beta in s.betas[: t + 1].tolist():
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    closed = s.q_sample(x0, torch.full((20000,), t), torch.randn(20000, generator=gen, dtype=torch.float64))
    assert abs(x.mean() - closed.mean()) < 0.03 and abs(x.var() - closed.var()) < 0.03
    assert abs(closed.mean() - 0.7 * s.alphas_bar[t].sqrt()) < 0.02


def test_ddpm_step_matches_paper_eq6_without_clipping() -> None:
    s = NoiseSchedule(DiffusionConfig())
    sampler = DDPMSampler(s, clip_x0=False)
    x_t, eps = torch.randn(2, 3, 128, 3, dtype=torch.float64), torch.randn(2, 3, 128, 3, dtype=torch.float64)
    step = 500
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    got = sampler.step(x_t, step, eps, gen_a)
    beta, alpha, ab = s.betas[step], s.alphas[step], s.alphas_bar[step]
    z = torch.randn(x_t.shape, generator=gen_b, dtype=torch.float64)
    expected = (x_t - beta / (1 - ab).sqrt() * eps) / alpha.sqrt() + beta.sqrt() * z
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-8)


def test_scaling_round_trip() -> None:
    x = torch.rand(2, 3, 128, 3)
    y = to_model_space(x)
    assert y.min() >= -1 and y.max() <= 1
    torch.testing.assert_close(from_model_space(y), x)


def test_band_gap_has_three_classes_plus_null() -> None:
    gaps = torch.tensor([0.0, 0.3, 1.49, 1.5, 4.0, float("nan")])
    assert band_gap_class(gaps).tolist() == [0, 1, 1, 2, 2, 3]


def test_loss_is_zero_for_perfect_noise_predictor() -> None:
    s = NoiseSchedule(DiffusionConfig())
    t, noise, drop = sample_training_noise(4, 1000, 0.2, torch.Generator().manual_seed(0))
    cond = Conditions(torch.ones(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    x0 = torch.rand(4, 3, 128, 3) * 2 - 1

    class Oracle(torch.nn.Module):
        def forward(self, x_t: torch.Tensor, t_: torch.Tensor, c: Conditions) -> torch.Tensor:
            a, b = s.gather(s.alphas_bar.sqrt(), t_, x_t), s.gather((1 - s.alphas_bar).sqrt(), t_, x_t)
            return (x_t - a * x0) / b

    assert diffusion_loss(Oracle(), s, LossInputs(x0, cond, t, noise, drop)).item() < 1e-8
    assert diffusion_loss(lambda *a: torch.zeros_like(x0), s, LossInputs(x0, cond, t, noise, drop)).item() > 0.5


def test_guidance_batches_cond_and_uncond_in_one_forward() -> None:
    calls = []

    def model(x: torch.Tensor, t: torch.Tensor, c: Conditions) -> torch.Tensor:
        calls.append(x.shape[0])
        return torch.where(c.band_gap[:, None, None, None] == 3, torch.zeros_like(x), torch.ones_like(x))

    cond = Conditions(torch.ones(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    eps = guided_eps(model, torch.zeros(2, 3, 128, 3), torch.zeros(2, dtype=torch.long), cond, 3.0, 0)
    assert calls == [4]
    torch.testing.assert_close(eps, torch.full_like(eps, 3.0))  # 0 + 3 * (1 - 0)


def test_ddim_with_oracle_recovers_the_clean_tensor() -> None:
    """With the exact noise of a single known x0, deterministic DDIM lands on x0 in few steps."""
    s = NoiseSchedule(DiffusionConfig())
    x0 = torch.rand(1, 3, 128, 3) * 1.6 - 0.8

    def oracle(x_t: torch.Tensor, t: torch.Tensor, c: Conditions) -> torch.Tensor:
        a, b = s.gather(s.alphas_bar.sqrt(), t, x_t), s.gather((1 - s.alphas_bar).sqrt(), t, x_t)
        return (x_t - a * x0.expand_as(x_t)) / b

    cond = Conditions(torch.ones(1, 3, dtype=torch.long), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    out = DDIMSampler(s, n_steps=10, guidance_scale=1.0).sample(oracle, cond, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=1e-4)


def test_v_prediction_target_and_its_noise_agree() -> None:
    """eps recovered from the exact v target is the noise that made x_t (independent algebra)."""
    s = NoiseSchedule(DiffusionConfig())
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(5, 3, 128, 3, generator=gen), torch.randn(5, 3, 128, 3, generator=gen)
    t = torch.tensor([0, 1, 250, 700, 999])
    x_t = s.q_sample(x0, t, noise)
    ab = s.alphas_bar[t].float().reshape(-1, 1, 1, 1)
    v = ab.sqrt() * noise - (1 - ab).sqrt() * x0
    assert torch.allclose(s.v_target(x0, t, noise), v, atol=1e-5)
    assert torch.allclose(s.eps_from_v(x_t, t, v), noise, atol=1e-4)


def test_min_snr_weighting_matches_a_direct_computation() -> None:
    s = NoiseSchedule(DiffusionConfig())
    gen = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(3, 3, 128, 3, generator=gen), torch.randn(3, 3, 128, 3, generator=gen)
    t, drop = torch.tensor([5, 300, 900]), torch.zeros(3, dtype=torch.bool)
    cond = Conditions(torch.ones(3, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    out = torch.randn(3, 3, 128, 3, generator=gen)
    model = lambda *a: out  # noqa: E731
    snr = (s.alphas_bar[t] / (1 - s.alphas_bar[t])).float()
    per_sample_eps = ((out - noise) ** 2).flatten(1).mean(1)
    expected_eps = (per_sample_eps * torch.clamp(snr, max=5.0) / snr).mean()
    got_eps = diffusion_loss(model, s, LossInputs(x0, cond, t, noise, drop), DiffusionConfig(prediction="eps", loss_weighting="min_snr"))
    assert torch.allclose(got_eps, expected_eps, rtol=1e-5)
    v = s.v_target(x0, t, noise)
    per_sample_v = ((out - v) ** 2).flatten(1).mean(1)
    expected_v = (per_sample_v * torch.clamp(snr, max=5.0) / (snr + 1)).mean()
    got_v = diffusion_loss(model, s, LossInputs(x0, cond, t, noise, drop), DiffusionConfig(prediction="v", loss_weighting="min_snr"))
    assert torch.allclose(got_v, expected_v, rtol=1e-5)
    plain = diffusion_loss(model, s, LossInputs(x0, cond, t, noise, drop))
    assert torch.allclose(plain, per_sample_eps.mean(), rtol=1e-6)


def test_denoise_from_partial_noise_uses_the_same_loop() -> None:
    """Denoising from timestep t (reconstruction) lands on x0 with the oracle, over at most n_steps timesteps."""
    s = NoiseSchedule(DiffusionConfig())
    x0 = torch.rand(2, 3, 128, 3) * 1.6 - 0.8

    def oracle(x_t: torch.Tensor, t: torch.Tensor, c: Conditions) -> torch.Tensor:
        a, b = s.gather(s.alphas_bar.sqrt(), t, x_t), s.gather((1 - s.alphas_bar).sqrt(), t, x_t)
        return (x_t - a * x0) / b

    cond = Conditions(torch.ones(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    sampler = DDIMSampler(s, n_steps=10, guidance_scale=1.0)
    assert sampler.timesteps(300)[0] == 300 and sampler.timesteps(300)[-1] == 0 and len(sampler.timesteps(300)) == 10
    assert sampler.timesteps(4) == [4, 3, 2, 1, 0] and sampler.timesteps() == sampler.steps
    x_t = s.q_sample(x0, torch.full((2,), 300), torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(sampler.denoise(oracle, x_t, cond, start=300), x0, rtol=1e-4, atol=1e-4)
    ddpm = DDPMSampler(s, guidance_scale=1.0, variance="posterior")
    assert ddpm.timesteps(5) == [5, 4, 3, 2, 1, 0] and len(ddpm.timesteps()) == s.timesteps


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_distance_term_uses_the_schedules_clean_estimate_bit_for_bit(prediction: str) -> None:
    """The pair-distance term is computed on the schedule's own x0 estimate, exactly as the hand-written formula."""
    from pccd_hpc.model.distance_loss import pair_distance_loss

    s = NoiseSchedule(DiffusionConfig())
    gen = torch.Generator().manual_seed(4)
    x0, noise = torch.rand(3, 3, 128, 3, generator=gen) * 2 - 1, torch.randn(3, 3, 128, 3, generator=gen)
    t, drop = torch.tensor([10, 400, 990]), torch.zeros(3, dtype=torch.bool)
    cond = Conditions(torch.ones(3, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    out = torch.randn(3, 3, 128, 3, generator=gen)
    lattice = torch.eye(3).expand(3, 3, 3) * 5.0
    got = diffusion_loss(lambda *a: out, s, LossInputs(x0, cond, t, noise, drop, lattice),
                         DiffusionConfig(prediction=prediction, distance_loss_weight=0.5))
    x_t = s.q_sample(x0, t, noise)
    a, b = s.gather(s.alphas_bar.sqrt(), t, x_t), s.gather((1 - s.alphas_bar).sqrt(), t, x_t)
    x0_hat = (x_t - b * out) / a if prediction == "eps" else a * x_t - b * out
    target = noise if prediction == "eps" else s.v_target(x0, t, noise)
    per_sample = ((out - target) ** 2).flatten(1).mean(1)
    want = (per_sample + 0.5 * s.alphas_bar[t].float() * pair_distance_loss(x0_hat, x0, lattice)).mean()
    assert torch.equal(got, want)
