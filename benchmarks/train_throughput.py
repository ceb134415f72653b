"""Training and guided-sampling throughput of the model presets (figures, not a test).

    python benchmarks/train_throughput.py                                  # cpu preset, 1 and 2 processes
    python benchmarks/train_throughput.py --presets cpu paper --nproc 1 2 --json bench.json
    python benchmarks/train_throughput.py --presets paper --device cuda --precision bf16

One training step is exactly the loop's: q_sample + conditional U-Net + epsilon loss, backward
(DDP all-reduce over gloo/NCCL when --nproc > 1), gradient clipping, AdamW, EMA update, on synthetic
tensors of the codec's shape (3, 128, 3) so that data loading is not measured (see --data for the
augmenting dataset's own rate). Reported: global samples/s of training, samples/s of one guided
denoising step (conditional + unconditional batched into one forward of 2B), parameters, and the
peak memory (CPU: max resident set per process; GPU: max allocated).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pccd_hpc.config import get_preset
from pccd_hpc.model.conditioning import Conditions
from pccd_hpc.model.diffusion import LossInputs, NoiseSchedule, diffusion_loss, sample_training_noise
from pccd_hpc.model.samplers import guided_eps
from pccd_hpc.model.unet import UNet, count_parameters
from pccd_hpc.train.distributed import free_port
from pccd_hpc.train.ema import EMA


def _conditions(n: int) -> Conditions:
    return Conditions(torch.randint(1, 119, (n, 3)), torch.randint(0, 3, (n,)), torch.zeros(n, dtype=torch.long))


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, preset: str, batch: int, queue: mp.Queue) -> None:
    torch.set_num_threads(max(1, args.threads // world))
    if world > 1:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                                rank=rank, world_size=world)
    device = torch.device(args.device, rank) if args.device == "cuda" else torch.device("cpu")
    config = get_preset(preset)
    torch.manual_seed(0)
    model = UNet(config.model).to(device)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ema = EMA(model, 0.999)
    schedule = NoiseSchedule(config.diffusion)
    local = batch // world
    x0 = (torch.rand(local, 3, 128, 3) * 2 - 1).to(device)
    cond = _conditions(local).to(device)
    precision = config.train.precision if args.precision == "preset" else args.precision
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    gen = torch.Generator().manual_seed(rank)

    def step() -> None:
        t, noise, drop = sample_training_noise(local, schedule.timesteps, 0.2, gen)
        with autocast:
            loss = diffusion_loss(net, schedule, LossInputs(x0, cond, t.to(device), noise.to(device), drop.to(device)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)

    train_s = _timed(step, args.warmup, args.steps, device, world)
    model.eval()
    t_mid = torch.full((local,), 500, device=device)

    def denoise() -> None:
        with autocast:
            guided_eps(model, x0, t_mid, cond, 3.0, 0)

    sample_s = _timed(denoise, 1, args.steps, device, world)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    if rank == 0:
        queue.put({"preset": preset, "params": count_parameters(model), "batch": batch, "nproc": world,
                   "threads_per_process": torch.get_num_threads(), "device": args.device, "precision": "bf16" if use_bf16 else "fp32",
                   "train_samples_per_s": batch / train_s, "guided_step_samples_per_s": batch / sample_s,
                   "peak_memory_mib_per_process": peak / 2**20})
    if world > 1:
        dist.destroy_process_group()


def _timed(fn: object, warmup: int, steps: int, device: torch.device, world: int) -> float:
    """Median seconds per call after ``warmup`` calls (synchronised across processes)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if world > 1:
            dist.barrier()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _dataset_rate(data: str, n: int) -> float:
    from pccd_hpc.data.augmentation import Augmentation
    from pccd_hpc.data.dataset import ShardDataset

    ds = ShardDataset(data, Augmentation(augment=True))
    start = time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark grid and print one JSON line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cpu"])
    parser.add_argument("--nproc", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch", type=int, help="global batch (default: the preset's; 32 for paper on CPU)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads in total")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["preset", "fp32", "bf16"], default="preset",
                        help="autocast precision (default: the preset's; auto resolves to fp32 on CPU)")
    parser.add_argument("--data", help="also measure the augmenting ShardDataset's items/s on this shard folder")
    parser.add_argument("--json", help="append results to this JSON-lines file")
    args = parser.parse_args(argv)
    rows = []
    ctx = mp.get_context("spawn")
    for preset in args.presets:
        batch = args.batch or (32 if preset == "paper" and args.device == "cpu" else get_preset(preset).train.batch_size)
        for world in args.nproc:
            queue = ctx.SimpleQueue()
            mp.start_processes(_worker, args=(world, free_port(), args, preset, batch, queue), nprocs=world,
                               join=True, start_method="spawn")
            rows.append(queue.get())
            print(json.dumps(rows[-1]), flush=True)
    if args.data:
        rows.append({"dataset_augment_items_per_s": _dataset_rate(args.data, 500)})
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
