"""``encode`` and ``info`` subcommands, which sit above the ``data`` package.

``data/`` is the library every stage reads with (codec, readers, shards, dataset) and knows no
cluster and no model: ``encode`` picks the MPI communicator here (:mod:`pccd_hpc.cluster.mpi`)
and passes it in, and ``info`` describes the installation including the bundled model.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
from pathlib import Path

from pccd_hpc import __version__
from pccd_hpc.cluster.mpi import world_communicator
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.data.encode import EncodeConfig, load_manifest, run_encode
from pccd_hpc.data.sample import sample_csv_path
from pccd_hpc.io_utils import read_json

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``encode`` and ``info`` subcommands."""
    enc = subparsers.add_parser(
        "encode",
        help="encode structures (CSV with a cif column, CIF/POSCAR folders) into sharded HDF5",
        description="Encode crystals into PCCD 3x128x3 tensors in HDF5 shards, with a manifest and "
        "rejected.csv. Run under `mpiexec -n K` to split shards over ranks. Re-running resumes.",
    )
    enc.add_argument("--input", nargs="+", default=None, metavar="PATH",
                     help="CSV(.gz) files, folders of CIF/POSCAR files, or .txt lists of them "
                     "(default: the sample bundled with the package)")
    enc.add_argument("--out", required=True, help="output folder")
    enc.add_argument("--shard-size", type=int, default=1024, help="input records per shard (default 1024)")
    enc.add_argument("--codec-preset", choices=["default", "paper"], default="default",
                     help="default: log lengths, Niggli cells; paper: lengths/15 A as in PCCD")
    enc.add_argument("--length-norm", choices=["linear", "log"], default=None, help="override the length normalisation")
    enc.add_argument("--length-scale", type=float, default=None, help="override L in Angstrom")
    enc.add_argument("--no-roundtrip-check", action="store_true", help="skip decoding every record to verify it")
    enc.set_defaults(func=_run_encode)

    info = subparsers.add_parser("info", help="describe the installation, or a shard folder's manifest")
    info.add_argument("path", nargs="?", default=None, help="a shard folder (with manifest.json)")
    info.set_defaults(func=_run_info)


def codec_from_args(args: argparse.Namespace) -> CodecConfig:
    """Build the codec config from ``--codec-preset`` and its overrides."""
    codec = CodecConfig.paper() if args.codec_preset == "paper" else CodecConfig()
    overrides = {}
    if args.length_norm is not None:
        overrides["length_norm"] = args.length_norm
    if args.length_scale is not None:
        overrides["length_scale_ang"] = args.length_scale
    return CodecConfig.from_dict({**codec.to_dict(), **overrides}) if overrides else codec


def _run_encode(args: argparse.Namespace) -> int:
    inputs = args.input or [str(sample_csv_path())]
    config = EncodeConfig(inputs=inputs, out_dir=args.out, shard_size=args.shard_size,
                          codec=codec_from_args(args), roundtrip_check=not args.no_roundtrip_check)
    manifest = run_encode(config, world_communicator())
    if manifest is not None:
        keys = ("n_input", "n_encoded", "n_rejected", "n_roundtrip_matched", "n_atom_count_matched", "rejection_reasons")
        print(json.dumps({k: manifest[k] for k in keys}, indent=2))
    return 0


def _run_info(args: argparse.Namespace) -> int:
    if args.path is None:
        import torch

        from pccd_hpc.sampling.checkpoint_sampler import BUNDLED_CHECKPOINT

        card = BUNDLED_CHECKPOINT.with_suffix(".json")
        print(json.dumps({
            "pccd_hpc": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "cuda_available": torch.cuda.is_available(), "bundled_sample": str(sample_csv_path()),
            "bundled_model": str(BUNDLED_CHECKPOINT) if BUNDLED_CHECKPOINT.exists() else None,
            "bundled_model_step": read_json(card, "model card")["step"] if card.exists() else None,
        }, indent=2))
        return 0
    manifest = load_manifest(Path(args.path))
    summary = {k: v for k, v in manifest.items() if k not in ("roundtrip_unmatched", "shards")}
    summary["n_shards"] = len(manifest["shards"])
    print(json.dumps(summary, indent=2))
    return 0
