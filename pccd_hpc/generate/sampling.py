"""Load a checkpoint (a training ``last.pt`` or the slim bundled file) and sample codec tensors from it."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from pccd_hpc.config import DiffusionConfig, RunConfig
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.io_utils import atomic_path, sha256_file
from pccd_hpc.model.conditioning import BAND_GAP_NULL, Conditions
from pccd_hpc.model.diffusion import NoiseSchedule, from_model_space
from pccd_hpc.model.samplers import DDIMSampler, DDPMSampler
from pccd_hpc.model.factory import EpsPredictor, build_denoiser

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


def default_checkpoint() -> Path:
    """The checkpoint bundled with the package (``pccd_hpc/weights/pccd-cpu.pt``)."""
    if not BUNDLED_CHECKPOINT.exists():
        raise FileNotFoundError(f"bundled checkpoint missing: {BUNDLED_CHECKPOINT} (pass --checkpoint)")
    return BUNDLED_CHECKPOINT


@functools.lru_cache(maxsize=4)
def load_model(checkpoint: str, device: str = "cpu", precision: str = "auto") -> LoadedModel:
    """Load a checkpoint with ``weights_only=True`` and build its model with the EMA weights.

    ``precision``: ``auto`` runs the network in bf16 autocast where it was trained so (``train.precision
    = "bf16"``) or on a GPU, else float32; ``bf16`` / ``fp32`` force one.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    state = torch.load(path, map_location=device, weights_only=True)
    for key in ("config", "ema"):
        if key not in state:
            raise ValueError(f"{checkpoint}: not a pccd_hpc checkpoint (no {key!r} entry)")
    config = RunConfig.from_dict(state["config"])
    net = build_denoiser(config)
    net.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    bf16 = precision == "bf16" or (precision == "auto" and (config.train.precision == "bf16"
                                                             or str(device).startswith("cuda")))
    model = EpsPredictor(net, NoiseSchedule(config.diffusion), config.diffusion.prediction, bf16).to(device)
    model.eval()
    codec = CodecConfig.from_dict(state["codec"]) if state.get("codec") else CodecConfig()
    return LoadedModel(model, config, codec, sha256_file(path), int(state.get("step", 0)))


def export_slim_checkpoint(run_checkpoint: str | Path, out: str | Path, extra: dict | None = None,
                           weights_dtype: str | None = None) -> Path:
    """Write a sampling-only checkpoint (EMA weights, config, codec, step) atomically.

    ``weights_dtype="float16"`` stores floating-point weights in half precision (half the size;
    :func:`load_model` computes in float32).
    """
    state = torch.load(run_checkpoint, map_location="cpu", weights_only=True)
    ema = state["ema"]
    if weights_dtype == "float16":
        ema = {k: v.half() if v.is_floating_point() else v for k, v in ema.items()}
    slim = {"ema": ema, "config": state["config"], "codec": state.get("codec", {}), "step": state["step"],
            "loss": state.get("loss", float("nan")), "code_version": state.get("code_version", ""), **(extra or {})}
    with atomic_path(out) as tmp:
        torch.save(slim, tmp)
    return Path(out)


class CheckpointSampler:
    """Samples codec-space tensors (B, 3, 128, 3) for requested element slots."""

    def __init__(self, loaded: LoadedModel, sampler: str = "ddim", steps: int = 50, guidance: float = 3.0,
                 device: str = "cpu") -> None:
        self.loaded = loaded
        self.device = device
        diffusion: DiffusionConfig = loaded.config.diffusion
        schedule = NoiseSchedule(diffusion)
        magnetic_null = loaded.config.model.num_magnetic_classes
        self.magnetic_null = magnetic_null
        if sampler == "ddpm":
            self.sampler = DDPMSampler(schedule, guidance, diffusion.clip_x0, diffusion.ddpm_variance, magnetic_null)
        else:
            self.sampler = DDIMSampler(schedule, steps, 0.0, guidance, diffusion.clip_x0, magnetic_null)

    def conditions(self, element_z: torch.Tensor, band_gap_class: int | None) -> Conditions:
        """Conditions for a batch: the element slots, one band-gap class (or null), null magnetism."""
        batch = element_z.shape[0]
        gap = BAND_GAP_NULL if band_gap_class is None else int(band_gap_class)
        return Conditions(element_z.long(), torch.full((batch,), gap, dtype=torch.long),
                          torch.full((batch,), self.magnetic_null, dtype=torch.long)).to(self.device)

    @torch.no_grad()
    def sample(self, element_z: torch.Tensor, band_gap_class: int | None, generator: torch.Generator) -> torch.Tensor:
        """Codec-space samples (B, 3, 128, 3) for ``element_z`` (B, 3)."""
        cond = self.conditions(element_z, band_gap_class)
        x = self.sampler.sample(self.loaded.model, cond, generator=generator, device=self.device)
        return from_model_space(x).float().cpu()


def load_sampler(plan: "GeneratePlan") -> CheckpointSampler:  # noqa: F821 (imported lazily to avoid a cycle)
    """Build the sampler a generation plan asks for, checking the checkpoint hash."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_model(plan.checkpoint, device)
    if loaded.sha256 != plan.checkpoint_sha256:
        raise ValueError(f"{plan.checkpoint} changed since the plan was made (sha256 differs); use a new --out folder")
    return CheckpointSampler(loaded, plan.sampler, plan.steps, plan.guidance, device)
