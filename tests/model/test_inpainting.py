"""Inpainting the element channel: the network sees the known channel noised to each step, the output holds it exactly."""

from __future__ import annotations

import numpy as np
import torch

from pccd_hpc.data.composition import cell_compositions, decode_with_sites, element_channel
from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, default_checkpoint, load_model
from pccd_hpc.model.diffusion import to_model_space
from pccd_hpc.model.inpainting import sample_cell_candidates


class _Recording(torch.nn.Module):
    """The real network, keeping every x_t it is given."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.seen: list[torch.Tensor] = []

    def forward(self, x_t, t, cond):
        self.seen.append((x_t.detach().clone(), t.detach().clone()))
        return self.net(x_t, t, cond)


def test_inpainting_keeps_the_element_channel_and_decodes_to_the_composition() -> None:
    loaded = load_model(str(default_checkpoint()))
    sampler = CheckpointSampler(loaded, "ddim", 4, 3.0)
    recording = _Recording(loaded.model)
    sampler.loaded.model = recording
    cell = cell_compositions("Sr2TiO4", loaded.codec)[0]
    out = sample_cell_candidates(sampler, cell, 3, torch.Generator().manual_seed(0))
    known = torch.from_numpy(element_channel(cell, loaded.codec.n_points))
    assert out.shape == (3, 3, 128, 3)
    assert torch.equal(out[:, 1], known[None].expand(3, -1, -1))  # exactly the known one-hot
    # every model call saw channel 1 = sqrt(ab_t) known + sqrt(1 - ab_t) eps with one eps per sample
    schedule = sampler.sampler.schedule
    implied = []
    for x_t, t in recording.seen:
        ab = float(schedule.alphas_bar[int(t[0])])
        x_t = x_t[:3]  # guidance batches conditional and unconditional passes: the first half is the batch
        implied.append((x_t[:, 1] - ab**0.5 * to_model_space(known)) / (1 - ab) ** 0.5)
    assert len(implied) == 4
    for eps in implied[1:]:
        torch.testing.assert_close(eps, implied[0], atol=1e-4, rtol=0)
    assert 0.5 < float(implied[0].std()) < 1.5  # it is noise, not the clean channel
    for tensor in out.numpy():
        result = decode_with_sites(tensor, cell, loaded.codec, min_distance_ang=0.0)
        assert result.valid and result.structure.composition.reduced_formula == "Sr2TiO4"
        assert len(result.structure) == 7 and np.isfinite(result.structure.volume)
