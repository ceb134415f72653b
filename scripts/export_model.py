"""Export a run's newest complete checkpoint as the slim bundled model (EMA weights + config + codec) with its card data.

Usage: python scripts/export_model.py RUN_DIR|RUN_DIR/checkpoints/step-N OUT.pt [--float16]
Writes OUT.pt atomically and OUT.json (sha256, step, final loss, parameter count, config). With
``--float16`` the weights are stored in half precision (half the file; loaded back as float32).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.model.checkpoint import export_checkpoint
from pccd_hpc.io_utils import atomic_write_json
from pccd_hpc.model.unet import count_parameters  # any nn.Module


def main(source: Path, out: Path, float16: bool = False) -> None:
    """Export a run's newest complete checkpoint, or one ``step-N/`` folder of it, and describe it."""
    export_checkpoint(source, out, weights_dtype="float16" if float16 else None)
    loaded = load_model(out)
    run_dir = source.parent.parent if source.name.startswith("step-") else source
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    metrics = [m for m in logged if m["step"] <= loaded.step]  # the losses up to the exported step
    card = {
        "file": out.name,
        "sha256": loaded.sha256,
        "size_bytes": out.stat().st_size,
        "step": loaded.step,
        "parameters": count_parameters(loaded.model),
        "final_loss_mean_last_10_logs": sum(m["loss"] for m in metrics[-10:]) / max(1, len(metrics[-10:])),
        "config": loaded.config.to_dict(),
        "codec": loaded.codec.to_dict(),
    }
    atomic_write_json(out.with_suffix(".json"), card)
    print(json.dumps({k: v for k, v in card.items() if k not in ("config", "codec")}, indent=2))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--float16"]
    main(Path(args[0]), Path(args[1]), float16="--float16" in sys.argv[1:])
