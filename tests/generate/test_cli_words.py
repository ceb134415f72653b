"""The generate command line in the user's terms: flags named in errors, help for every option, one --time
format for every stage, a plan that says how to submit it and how long it will take."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pccd_hpc.launch import build_parser, main


def test_every_option_of_every_subcommand_has_help_text() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = {name: [a.option_strings for a in sub._actions if a.help in (None, "") and a.option_strings]
               for name, sub in commands.items()}
    assert not any(missing.values()), {k: v for k, v in missing.items() if v}


@pytest.mark.parametrize("args,flag", [(["--n", "0"], "--n must be >= 1"), (["--n", "3", "--steps", "0"], "--steps must be >= 1"),
                                       (["--n", "3", "--batch-size", "0"], "--batch-size must be >= 1")])
def test_bad_values_are_refused_naming_the_flag(args, flag, tmp_path: Path, tiny_checkpoint: Path, caplog) -> None:
    assert main(["generate", *args, "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "g")]) == 2
    assert flag in caplog.text and "config field" not in caplog.text


def test_a_text_file_as_checkpoint_is_named_without_unsafe_advice(tmp_path: Path, caplog) -> None:
    text = tmp_path / "README.md"
    text.write_text("# not a model\n")
    assert main(["generate", "--n", "2", "--checkpoint", str(text), "--out", str(tmp_path / "g")]) == 2
    assert f"{text}: not a readable checkpoint" in caplog.text
    assert "weights_only" not in caplog.text and "False" not in caplog.text


@pytest.mark.parametrize("command,extra", [("generate", ["--n", "1", "--out", "o"]), ("validate", ["--input", "i", "--out", "o"]),
                                           ("train", ["--data", "d", "--out", "o"]), ("followup", ["--out", "o"])])
def test_every_time_option_reads_minutes_and_clock_times_alike(command: str, extra: list[str]) -> None:
    parser = build_parser()
    for given, minutes in (("90", 90), ("01:30:00", 90), ("1-00:00:00", 1440)):
        assert parser.parse_args([command, *extra, "--time", given]).time == minutes
    with pytest.raises(SystemExit):
        parser.parse_args([command, *extra, "--time", "1:00:00:00"])


def test_plan_only_prints_tasks_submit_command_and_estimate_then_merges(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "g"
    common = ["generate", "--n", "4", "--elements", "Si", "--checkpoint", str(tiny_checkpoint), "--steps", "2",
              "--batch-size", "2", "--out", str(out)]
    assert main([*common, "--array-size", "2", "--time", "00:20:00", "--plan-only"]) == 0
    printed = capsys.readouterr().out
    assert "4 samples of 1 chemical system(s) in 2 task(s) of up to 2 samples" in printed
    submit = next(line for line in printed.splitlines() if "submit:" in line).split()
    assert submit[1:3] == ["sbatch", "--array=0-1"] and "--time=20" in submit and "--cpus-per-task=2" in submit
    assert submit[-2].endswith("jobs/generate_array.sh") and submit[-1] == str(out.resolve())
    assert not any(word.startswith("--signal") for word in submit)
    assert "estimate:" in printed and "s per sample" in printed and "per task" in printed
    assert not list(out.glob("shard-*"))  # nothing sampled
    for task in (0, 1):  # what the array would run
        assert main(["generate-task", "--out", str(out), "--task", str(task)]) == 0
    capsys.readouterr()
    assert main(common) == 0  # the merge: no --array-size needed, the plan's is used
    assert json.loads(capsys.readouterr().out)["n_generated"] == 4 and (out / "structures.csv").exists()


def test_plan_only_for_many_samples_splits_them_without_being_asked(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    assert main(["generate", "--n", "2500", "--elements", "Si", "--checkpoint", str(tiny_checkpoint), "--steps", "1",
                 "--out", str(tmp_path / "g"), "--plan-only"]) == 0
    assert "in 3 task(s) of up to 834 samples" in capsys.readouterr().out
