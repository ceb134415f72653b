"""Load a checkpoint's EMA network (any form :mod:`pccd_hpc.model.checkpoint` reads) and sample codec tensors from it.

The sampling settings default to the paper's (:data:`~pccd_hpc.model.samplers.DDIM_STEPS` DDIM steps,
guidance :data:`~pccd_hpc.model.samplers.GUIDANCE_SCALE`); ``generate``, ``reconstruct`` and ``evaluate``
all sample through :class:`CheckpointSampler`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from pccd_hpc.config import DiffusionConfig, RunConfig
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.model.conditioning import BAND_GAP_NULL, Conditions, draw_site_counts
from pccd_hpc.model.diffusion import NoiseSchedule, from_model_space
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE, DDIMSampler, DDPMSampler
from pccd_hpc.model.factory import EpsPredictor, build_denoiser, site_encoder
from pccd_hpc.model.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "pccd-cpu.pt"


@dataclass
class LoadedModel:
    """A denoiser with the EMA weights of a checkpoint (wrapped to predict noise), and its training settings."""

    model: torch.nn.Module
    config: RunConfig
    codec: CodecConfig
    sha256: str
    step: int
    path: Path | None = None
    """The file or ``step-N/`` folder the weights came from (a run folder resolves to its newest step)."""


def default_checkpoint() -> Path:
    """The checkpoint bundled with the package (``pccd_hpc/weights/pccd-cpu.pt``)."""
    if not BUNDLED_CHECKPOINT.exists():
        raise FileNotFoundError(f"bundled checkpoint missing: {BUNDLED_CHECKPOINT} (pass --checkpoint)")
    return BUNDLED_CHECKPOINT


def pick_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(checkpoint: str | Path, device: str = "cpu", precision: str = "auto") -> LoadedModel:
    """Load a checkpoint (file, ``step-N/`` or run folder) and build its network with the EMA weights, in eval mode.

    ``precision``: ``auto`` runs the network in bf16 autocast where it was trained so (``train.precision
    = "bf16"``) or on a GPU, else float32; ``bf16`` / ``fp32`` force one. Weights stored in float16 are
    loaded as float32.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    loaded = load_checkpoint(checkpoint, map_location=device)
    config = loaded.config
    try:
        net = build_denoiser(config)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in loaded.ema.items()})
    except (RuntimeError, ValueError, TypeError, AttributeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{loaded.path or checkpoint}: its weights do not fit the network its own config describes "
                         f"(another architecture's weights, or an edited file): {first}") from err
    bf16 = precision == "bf16" or (precision == "auto" and (config.train.precision == "bf16"
                                                             or str(device).startswith("cuda")))
    model = EpsPredictor(net, NoiseSchedule(config.diffusion), config.diffusion.prediction, bf16).to(device)
    model.eval()
    return LoadedModel(model, loaded.config, loaded.codec, loaded.sha256, loaded.step, loaded.path)


def check_site_request(loaded: LoadedModel, n_sites: int | None) -> None:
    """``ValueError`` when ``n_sites`` is asked of a model without the site condition or outside its codec's range."""
    if n_sites is None:
        return
    if site_encoder(loaded.model) is None:
        raise ValueError(f"{loaded.path or 'checkpoint'} is not conditioned on the number of sites; "
                         f"drop --n-sites or use a model trained with model.site_condition")
    if not 1 <= n_sites <= loaded.codec.max_sites:
        raise ValueError(f"--n-sites must be in [1, {loaded.codec.max_sites}] for this model's codec, got {n_sites}")


class CheckpointSampler:
    """Samples codec-space tensors (B, 3, 128, 3) for requested element slots.

    It reports its denoising steps (``reports_steps``): ``sample(..., on_step=callback)``.

    A model conditioned on the number of sites (``model.site_condition``) gets ``n_sites`` for every
    sample, or, when it is None, counts drawn from the training set's distribution for the number of
    elements (with the sampling generator, so a seeded batch is reproducible).
    """

    reports_steps = True
    """``sample`` takes ``on_step`` (generation tasks then report progress within a batch)."""

    def __init__(self, loaded: LoadedModel, sampler: str = "ddim", steps: int = DDIM_STEPS, guidance: float = GUIDANCE_SCALE,
                 device: str | None = None, n_sites: int | None = None) -> None:
        self.loaded = loaded
        check_site_request(loaded, n_sites)
        encoder = site_encoder(loaded.model)
        self.n_sites = n_sites
        self.site_prior = encoder.site_count_prior.detach().cpu() if encoder is not None else None
        self.device = device or str(next(loaded.model.parameters()).device)
        diffusion: DiffusionConfig = loaded.config.diffusion
        schedule = NoiseSchedule(diffusion)
        magnetic_null = loaded.config.model.num_magnetic_classes
        self.magnetic_null = magnetic_null
        if sampler == "ddpm":
            self.sampler = DDPMSampler(schedule, guidance, diffusion.clip_x0, diffusion.ddpm_variance, magnetic_null)
        else:
            self.sampler = DDIMSampler(schedule, steps, 0.0, guidance, diffusion.clip_x0, magnetic_null)

    def conditions(self, element_z: torch.Tensor, band_gap_class: int | None,
                   n_sites: torch.Tensor | None = None) -> Conditions:
        """Conditions for a batch: the element slots, one band-gap class (or null), null magnetism, and
        ``n_sites`` (B,) (None: the number of sites withheld)."""
        batch = element_z.shape[0]
        gap = BAND_GAP_NULL if band_gap_class is None else int(band_gap_class)
        return Conditions(element_z.long(), torch.full((batch,), gap, dtype=torch.long),
                          torch.full((batch,), self.magnetic_null, dtype=torch.long), n_sites).to(self.device)

    def site_counts(self, element_z: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """Numbers of sites (B,) to ask for: the fixed ``n_sites``, counts drawn from the model's prior,
        or None for a model without the site condition."""
        if self.site_prior is None:
            return None
        if self.n_sites is not None:
            return torch.full((element_z.shape[0],), self.n_sites, dtype=torch.long)
        return draw_site_counts(self.site_prior, element_z, generator)

    @torch.no_grad()
    def denoise(self, x_t: torch.Tensor, t: int, cond: Conditions) -> torch.Tensor:
        """Model-space clean samples (B, 3, 128, 3) from ``x_t`` noised to timestep ``t``."""
        return self.sampler.denoise(self.loaded.model, x_t.to(self.device), cond, start=t)

    @torch.no_grad()
    def sample(self, element_z: torch.Tensor, band_gap_class: int | None, generator: torch.Generator,
               n_sites: torch.Tensor | None = None, on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Codec-space samples (B, 3, 128, 3) for ``element_z`` (B, 3); ``n_sites`` (B,) are the counts asked
        for (default :meth:`site_counts`, drawn with ``generator``); ``on_step(done, total)`` after each denoising step."""
        if n_sites is None:
            n_sites = self.site_counts(element_z, generator)
        cond = self.conditions(element_z, band_gap_class, n_sites)
        x = self.sampler.sample(self.loaded.model, cond, generator=generator, device=self.device, on_step=on_step)
        return from_model_space(x).float().cpu()

