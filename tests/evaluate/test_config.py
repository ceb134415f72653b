"""The evaluate stage's config: a frozen dataclass that round-trips through TOML, apart from its paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.evaluate.config import EvaluateConfig, EvaluatePaths
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE
from pccd_hpc.stage_config import load_config_toml, save_config_toml


def test_defaults_are_the_sampling_layers() -> None:
    config = EvaluateConfig()
    assert (config.steps, config.guidance, config.push_apart_factor) == (DDIM_STEPS, GUIDANCE_SCALE, PUSH_APART_FACTOR)


def test_config_round_trips_through_toml(tmp_path: Path) -> None:
    config = EvaluateConfig(n_samples=32, steps=10, guidance=1.5, sampler="ddpm", seed=4, skip_coverage=True,
                            push_apart_factor=0.7, precision="fp32")
    save_config_toml(config, tmp_path / "evaluate.toml")
    assert load_config_toml(EvaluateConfig, tmp_path / "evaluate.toml") == config


def test_a_bad_toml_value_names_the_file_and_the_field(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("n_samples = 0\n")
    with pytest.raises(ValueError, match="bad.toml.*n_samples"):
        load_config_toml(EvaluateConfig, tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("n_sample = 5\n")
    with pytest.raises(ValueError, match="n_sample"):
        load_config_toml(EvaluateConfig, tmp_path / "typo.toml")


def test_paths_are_kept_apart_from_the_settings(tmp_path: Path) -> None:
    paths = EvaluatePaths(checkpoint=tmp_path / "c.pt", data=tmp_path / "d", out=tmp_path / "e")
    assert paths.to_dict() == {"checkpoint": str(tmp_path / "c.pt"), "data": str(tmp_path / "d"),
                               "out": str(tmp_path / "e"), "train_data": None}
    assert not {"checkpoint", "data", "out", "train_data"} & set(EvaluateConfig().to_dict())
