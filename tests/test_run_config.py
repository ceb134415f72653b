"""Loading run configs: fields retired from DiffusionConfig are ignored with a warning (old checkpoints and TOML
files still load); any other unknown field is still an error."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from pccd_hpc.config import RETIRED_FIELDS, DiffusionConfig, RunConfig, resolve_config
from pccd_hpc.model.checkpoint import load_checkpoint
from pccd_hpc.sampling.checkpoint_sampler import BUNDLED_CHECKPOINT, load_model


def test_retired_fields_are_gone_from_the_dataclass() -> None:
    names = {f.name for f in dataclasses.fields(DiffusionConfig)}
    assert not names & set(RETIRED_FIELDS["diffusion"])


def test_toml_naming_a_retired_field_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    toml = tmp_path / "old.toml"
    toml.write_text("[diffusion]\nddim_steps = 20\nguidance_scale = 2.0\ntimesteps = 500\n")
    with caplog.at_level(logging.WARNING, logger="pccd_hpc.config"):
        config = resolve_config("tiny", toml)
    assert config.diffusion.timesteps == 500  # the live field of the same table still applies
    assert "diffusion.ddim_steps" in caplog.text and "diffusion.guidance_scale" in caplog.text
    assert "--steps" in caplog.text  # the user is told where the setting lives now


def test_an_unknown_field_is_still_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "typo.toml"
    toml.write_text("[diffusion]\ntimestep = 500\n")
    with pytest.raises(ValueError, match="timestep"):
        resolve_config("tiny", toml)


def test_bundled_checkpoint_holds_retired_fields_and_still_loads(caplog: pytest.LogCaptureFixture) -> None:
    stored = torch.load(BUNDLED_CHECKPOINT, map_location="cpu", weights_only=True)["config"]["diffusion"]
    assert set(RETIRED_FIELDS["diffusion"]) <= set(stored)  # written before the fields were retired
    with caplog.at_level(logging.WARNING, logger="pccd_hpc.config"):
        checkpoint = load_checkpoint(BUNDLED_CHECKPOINT)
        loaded = load_model(BUNDLED_CHECKPOINT)
    assert "diffusion.ddim_steps" in caplog.text
    assert checkpoint.config.diffusion.timesteps == stored["timesteps"]
    assert loaded.config.to_dict() == checkpoint.config.to_dict()
    assert RunConfig.from_dict(loaded.config.to_dict()) == loaded.config  # and round-trips without them


def test_a_run_recorded_before_the_fields_were_retired_still_resumes(tmp_path: Path) -> None:
    from pccd_hpc.io_utils import atomic_write_json, settings_sha256
    from pccd_hpc.train.run_settings import SETTINGS_NAME, check_resume, run_settings

    config = resolve_config("tiny")
    old = run_settings(config)
    old["diffusion"].update(guidance_scale=3.0, sampler="ddim", ddim_steps=50, ddim_eta=0.0)  # as older code wrote it
    atomic_write_json(tmp_path / SETTINGS_NAME, {"settings_sha256": settings_sha256(old), "settings": old})
    check_resume(tmp_path, None, config, config)  # the same run: no error
    other = config.with_overrides({"train": {"lr": 0.5}})
    with pytest.raises(ValueError, match="not made by this run"):
        check_resume(tmp_path, None, other, other)
