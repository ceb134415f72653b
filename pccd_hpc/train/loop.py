"""The training loop: set up, resume, loop (loss, step, EMA), log, checkpoint. Reads top to bottom.

Run it through ``python -m pccd_hpc.launch train`` (one process, ``--nproc K`` local processes,
``sbatch slurm/train.sh`` or ``--cluster slurm``); every process calls :func:`train` with its
:class:`~pccd_hpc.train.distributed.DistEnv`. Only the main process writes files.

Reproducibility: the data order comes from (seed, epoch), augmentation from (seed, epoch, item),
and the timesteps / noise / condition dropout of a global batch from (seed, batch number), so a
resumed run repeats exactly what an uninterrupted one does, and K processes see what one sees.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from pccd_hpc.config import RunConfig, save_toml
from pccd_hpc.data.dataset import ShardDataset
from pccd_hpc.folder_lock import folder_lock
from pccd_hpc.io_utils import atomic_write_text, disk_full_named, remove_stale_temps
from pccd_hpc.model import checkpoint as ckpt
from pccd_hpc.model.conditioning import conditions_from_batch, site_count_histogram
from pccd_hpc.model.diffusion import (
    LossInputs, NoiseSchedule, diffusion_loss, sample_training_noise, to_model_space,
)
from pccd_hpc.model.distance_loss import lattice_matrices
from pccd_hpc.model.factory import SITE_WEIGHTS_PREFIX, build_denoiser, site_encoder
from pccd_hpc.model.unet import count_parameters
from pccd_hpc.train import distributed as dist_utils
from pccd_hpc.train.data import RankBatchSampler, epoch_loader, steps_per_epoch
from pccd_hpc.train.device_batches import DeviceBatches
from pccd_hpc.train.distributed import DistEnv
from pccd_hpc.train.ema import EMA
from pccd_hpc.train.init_weights import load_initial_weights
from pccd_hpc.train.run_settings import check_resume, record_run_settings

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """Raised after ``max_nonfinite_steps`` consecutive NaN/inf losses or gradients (no checkpoint is written)."""


@dataclass
class TrainResult:
    """What a finished (or already finished) run reports."""

    step: int
    loss: float
    skipped_nonfinite: int
    run_dir: Path


def train(config: RunConfig, data_dir: str | Path, run_dir: str | Path, env: DistEnv | None = None) -> TrainResult:
    """Train (or resume training) into ``run_dir`` until ``config.train.max_steps`` optimizer steps.

    A resumed run refuses checkpoints of another run and changed training settings (:mod:`pccd_hpc.train.run_settings`);
    a second ``train`` on the same folder is refused (:class:`~pccd_hpc.folder_lock.FolderBusyError`).
    """
    # ---- set-up -------------------------------------------------------------------------------
    env = env or dist_utils.env_from_environment()
    run_dir = Path(run_dir).resolve()
    # One writer per run folder (the main process holds the lock, taken before any process group waits on it).
    with folder_lock(run_dir, f"train --out {run_dir}") if env.is_main else contextlib.nullcontext():
        return _train(config, data_dir, run_dir, env)


def _train(config: RunConfig, data_dir: str | Path, run_dir: Path, env: DistEnv) -> TrainResult:
    device = dist_utils.pick_device(env)
    dist_utils.set_cpu_threads(env, config.train.threads_per_process)
    dist_utils.init_process_group(env, device)
    state = ckpt.load_latest(run_dir, map_location=device)
    if state is not None:  # the architecture comes from the checkpoint; the training settings must match it
        saved = state.config
        config = RunConfig(model=saved.model, diffusion=saved.diffusion, train=config.train, dit=saved.dit,
                           denoiser=saved.denoiser, preset=saved.preset)
        check_resume(run_dir, state.path, saved, config)
    tc = config.train
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(run_dir)
        record_run_settings(run_dir, config)
        save_toml(config, run_dir / "config.toml")

    dataset = ShardDataset(data_dir, tc.augmentation(), seed=tc.seed)
    torch.manual_seed(tc.seed)
    model = build_denoiser(config).to(device)
    if state is None and tc.init_from:  # fine-tuning: weights from another model, everything else fresh
        source = ckpt.load_checkpoint(tc.init_from, map_location=device)
        load_initial_weights(model, source, config, dataset.codec)
    if state is None and config.model.site_condition:
        set_site_count_prior(model, dataset)
    ema = EMA(model, tc.ema_decay, tc.ema_warmup)
    optimizer = torch.optim.AdamW(parameter_groups(model, tc.lr, tc.site_lr_scale), lr=tc.lr, betas=tc.betas,
                                  weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _LRSchedule(tc.warmup_steps, tc.max_steps, tc.lr_decay,
                                                                          tc.min_lr_ratio))
    step, batches_seen, skipped_total = 0, 0, 0
    if state is not None:
        if state.trainer is None:
            raise ValueError(f"{state.path}: an exported checkpoint holds no optimizer state and cannot resume training")
        model.load_state_dict(state.trainer.model)
        ema.load_state_dict(state.ema)
        optimizer.load_state_dict(state.trainer.optimizer)
        scheduler.load_state_dict(state.trainer.scheduler)
        ckpt.set_rng_state(state.trainer.rng)
        step, batches_seen, skipped_total = state.step, state.trainer.batches_seen, state.trainer.skipped_nonfinite
    net: torch.nn.Module = DistributedDataParallel(model) if env.distributed else model
    if tc.compile:
        net = torch.compile(net)
    schedule = NoiseSchedule(config.diffusion)
    magnetic_null = config.model.num_magnetic_classes
    n_batches = steps_per_epoch(len(dataset), tc.batch_size)
    on_device = DeviceBatches(dataset, device, tc.augmentation()) if tc.device_batches else None
    metrics = _MetricsLog(run_dir / "metrics.jsonl", step) if env.is_main else None
    if env.is_main:
        log.info("model %s: %d parameters; %d records, %d steps/epoch, %d processes, device %s",
                 config.preset, count_parameters(model), len(dataset), n_batches, env.world_size, device)

    # ---- loop ---------------------------------------------------------------------------------
    consecutive_bad, loss_sum, loss_count, grad_norm = 0, 0.0, 0, 0.0
    last_loss, t_log, batches_at_log = math.nan, time.perf_counter(), batches_seen
    deadline = time.monotonic() + tc.max_minutes * 60 if tc.max_minutes > 0 else math.inf
    out_of_time = False
    while step < tc.max_steps and not out_of_time:
        epoch, start = divmod(batches_seen, n_batches)
        dataset.set_epoch(epoch)
        sampler = RankBatchSampler(len(dataset), tc.batch_size, epoch, tc.seed, env.rank, env.world_size, start)
        batches = (on_device.epoch(iter(sampler), tc.seed, epoch, start) if on_device is not None
                   else epoch_loader(dataset, sampler, tc.num_workers, pin_memory=device.type == "cuda"))
        for batch in batches:
            gen = torch.Generator().manual_seed((tc.seed * 1_000_000_007 + batches_seen) % 2**63)
            t, noise, drop = (v[env.rank::env.world_size] for v in sample_training_noise(
                tc.batch_size, schedule.timesteps, config.diffusion.cond_drop_prob, gen))
            batches_seen += 1
            x0 = to_model_space(batch["x"].to(device, non_blocking=True))
            cond = conditions_from_batch(batch, magnetic_null, with_sites=config.model.site_condition).to(device)
            if config.model.site_condition:  # drawn after the noise, so runs without the condition are unchanged
                withhold = (torch.rand(tc.batch_size, generator=gen) < tc.site_drop_prob)[env.rank::env.world_size]
                cond = cond.without_sites(withhold.to(device))
            with _autocast(tc.precision, device):
                lattice = (lattice_matrices(batch["x"].to(device), dataset.codec)
                           if config.diffusion.distance_loss_weight > 0 else None)
                inputs = LossInputs(x0, cond, t.to(device), noise.to(device), drop.to(device), lattice)
                loss = diffusion_loss(net, schedule, inputs, config.diffusion, magnetic_null)
            mean_loss = dist_utils.mean_over_processes(loss.detach().float()).item()
            ok = math.isfinite(mean_loss)
            if ok:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf))
                ok = math.isfinite(grad_norm)
            if not ok:  # skip the step, keep the weights; give up after repeated failures
                skipped_total, consecutive_bad = skipped_total + 1, consecutive_bad + 1
                log.warning("non-finite loss/gradient at step %d (batch %d): skipped (%d in a row)",
                            step, batches_seen, consecutive_bad)
                if consecutive_bad >= tc.max_nonfinite_steps:
                    raise TrainingDiverged(f"{consecutive_bad} consecutive non-finite steps at step {step}; "
                                           f"last checkpoint left untouched in {ckpt.checkpoint_dir(run_dir)}")
                optimizer.zero_grad(set_to_none=True)
                continue
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            ema.update(model, step + 1)
            step, consecutive_bad = step + 1, 0
            loss_sum, loss_count, last_loss = loss_sum + mean_loss, loss_count + 1, mean_loss

            # ---- log --------------------------------------------------------------------------
            out_of_time = dist_utils.any_process(time.monotonic() > deadline, device) if tc.max_minutes > 0 else False
            last_step = step == tc.max_steps or out_of_time
            if step % tc.log_every == 0 or last_step:
                now = time.perf_counter()
                row = {"step": step, "loss": loss_sum / loss_count, "lr": lr,
                       "samples_per_s": (batches_seen - batches_at_log) * tc.batch_size / max(now - t_log, 1e-9),
                       "grad_norm": grad_norm, "epoch": epoch, "skipped_nonfinite": skipped_total}
                if metrics is not None:
                    metrics.write(row)
                    log.info("step %d loss %.5f lr %.2e %.1f samples/s", step, row["loss"], row["lr"],
                             row["samples_per_s"])
                loss_sum, loss_count, t_log, batches_at_log = 0.0, 0, now, batches_seen

            # ---- checkpoint -------------------------------------------------------------------
            if step % tc.checkpoint_every == 0 or last_step:
                if env.is_main:
                    _check_finite(model, step)
                    trainer = ckpt.TrainerState(
                        model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        rng=ckpt.rng_state(), batches_seen=batches_seen, epoch=epoch,
                        skipped_nonfinite=skipped_total, world_size=env.world_size)
                    ckpt.save_checkpoint(run_dir, ckpt.Checkpoint(
                        step=step, config=config, codec=dataset.codec, ema=ema.state_dict(), loss=last_loss,
                        trainer=trainer), keep=tc.keep_checkpoints)
                dist_utils.barrier()
            if step >= tc.max_steps or out_of_time:
                break
    if state is not None and math.isnan(last_loss):
        last_loss = state.loss
    return TrainResult(step=step, loss=last_loss, skipped_nonfinite=skipped_total, run_dir=run_dir)


def parameter_groups(model: torch.nn.Module, lr: float, site_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """Optimizer parameter groups: every weight at ``lr``, the site condition's at ``lr * site_lr_scale``.

    One group when the network has no site condition (the optimizer state of older runs keeps its layout).
    """
    site = [p for name, p in model.named_parameters() if name.startswith(SITE_WEIGHTS_PREFIX)]
    rest = [p for name, p in model.named_parameters() if not name.startswith(SITE_WEIGHTS_PREFIX)]
    if not site:
        return [{"params": rest, "lr": lr}]
    return [{"params": rest, "lr": lr}, {"params": site, "lr": lr * site_lr_scale}]


def set_site_count_prior(model: torch.nn.Module, dataset: ShardDataset) -> None:
    """Store the training set's site-count histogram (by number of elements) in ``model``'s condition encoder."""
    encoder = site_encoder(model)
    if encoder is None:
        raise ValueError("set_site_count_prior needs a network built with model.site_condition")
    n_sites, element_z = [], []
    for shard in range(len(dataset.shards)):
        arrays = dataset.shard_arrays(shard)
        n_sites.append(torch.as_tensor(arrays.n_sites))
        element_z.append(torch.as_tensor(arrays.element_z))
    hist = site_count_histogram(torch.cat(n_sites), torch.cat(element_z))
    encoder.site_count_prior.copy_(hist.to(encoder.site_count_prior.device))
    log.info("site-count prior from %d training crystals", int(hist.sum()))


class _LRSchedule:
    """Learning-rate factor: linear warm-up from lr / warmup_steps to lr, then constant or cosine down to min_ratio."""

    def __init__(self, warmup_steps: int, max_steps: int, decay: str = "none", min_ratio: float = 0.1) -> None:
        self.steps, self.max_steps, self.decay, self.min_ratio = warmup_steps, max_steps, decay, min_ratio

    def __call__(self, step: int) -> float:
        if self.steps and step < self.steps:
            return (step + 1) / self.steps
        if self.decay == "none":
            return 1.0
        progress = min(1.0, (step - self.steps) / max(1, self.max_steps - self.steps))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()


def _check_finite(model: torch.nn.Module, step: int) -> None:
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise TrainingDiverged(f"parameter {name} is not finite at step {step}; refusing to write a checkpoint")


class _MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, rows after the checkpoint's step are dropped first."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        if path.exists():
            kept = []
            for line in path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line)
            atomic_write_text(path, "".join(k + "\n" for k in kept))

    def write(self, row: dict[str, Any]) -> None:
        line = json.dumps(row) + "\n"
        with disk_full_named(self.path, len(line)), open(self.path, "a") as fh:
            fh.write(line)
