"""Stage configs share one style: ValueError naming the field, and a TOML round trip like the training config."""

from __future__ import annotations

from pathlib import Path

import pytest

from pccd_hpc.cluster.slurm import SlurmResources
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.data.encode import EncodeConfig
from pccd_hpc.generate.plan import GeneratePlan
from pccd_hpc.sampling.reconstruction import ReconstructConfig
from pccd_hpc.stage_config import load_config_toml, save_config_toml

CONFIGS = [
    EncodeConfig(inputs=["a.csv", "cifs/"], out_dir="out", shard_size=7, codec=CodecConfig.paper()),
    GeneratePlan(n=10, systems=[(12, 8, 8)], checkpoint="m.pt", checkpoint_sha256="0" * 64, n_tasks=2,
                 codec=CodecConfig().to_dict()),
    GeneratePlan(n=10, systems=[(12, 8, 8), (14, 14, 14)], checkpoint="m.pt", checkpoint_sha256="1" * 64,
                 band_gap_class=2),
    SlurmResources(partition="debug", time_min=5, extra={"slurm_mem_per_cpu": "1G"}),
    ReconstructConfig(n=16, t=100, steps=5, guidance=1.5),
    SlurmResources(nodes=2, gpus_per_node=4, tasks_per_node=4),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_toml_round_trip(config: object, tmp_path: Path) -> None:
    save_config_toml(config, tmp_path / "c.toml")
    assert load_config_toml(type(config), tmp_path / "c.toml") == config


@pytest.mark.parametrize(("klass", "values", "field"), [
    (EncodeConfig, {"inputs": [], "out_dir": "o"}, "inputs"),
    (EncodeConfig, {"inputs": ["a"], "out_dir": "o", "shard_size": 0}, "shard_size"),
    (SlurmResources, {"cpus_per_task": 0}, "cpus_per_task"),
    (ReconstructConfig, {"t": 0}, "t"),
    (ReconstructConfig, {"guidance": -1.0}, "guidance"),
])
def test_bad_field_is_named(klass: type, values: dict, field: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"config field '{field}'"):
        klass(**values)


def test_unknown_key_in_toml_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("n = 4\nnoise_level = 3\n")
    with pytest.raises(ValueError, match=r"r\.toml.*noise_level"):
        load_config_toml(ReconstructConfig, path)
