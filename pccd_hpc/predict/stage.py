"""The predict stage: formulas -> k candidate crystals each (optionally relaxed and ranked) -> summary.

``run_predict`` writes ``predict.json``, runs the compositions not done yet (in this process, or as a SLURM
array of ``run_predict_task``), and merges every composition's state into ``summary.csv`` and
``summary.json``. A formula the codec cannot hold (more than ``max_sites`` sites or ``max_elements``
elements) or that is not a formula is refused by name with its reason, and the others are done.
Re-running the same command skips finished compositions (verified by sha256) and completes the rest.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pccd_hpc.cluster.slurm import SlurmResources
from pccd_hpc.data.codec import CodecConfig, RecordError
from pccd_hpc.data.composition import CellComposition, cell_compositions
from pccd_hpc.folder_lock import folder_lock, task_lock
from pccd_hpc.io_utils import atomic_write_csv, atomic_write_json, checked_output_dir, read_json, remove_stale_temps
from pccd_hpc.predict.candidates import (
    candidates_problem, check_label, composition_folder, composition_label, composition_seed, make_candidates, read_candidate_rows, read_candidates,
    marker_problem, write_marker,
)
from pccd_hpc.predict.config import PredictConfig
from pccd_hpc.stage_config import config_from_dict

if TYPE_CHECKING:
    from pccd_hpc.sampling.checkpoint_sampler import LoadedModel

log = logging.getLogger(__name__)

PLAN_NAME = "predict.json"
SUMMARY_COLUMNS = ("formula", "label", "status", "reason", "formula_units", "n_candidates", "n_valid", "best_id",
                   "best_energy_ev_per_atom", "best_space_group", "runners_up", "folder")
"""Columns of ``summary.csv``: ``status`` done / refused / pending; ``runners_up`` the next ids by energy."""
RUNNERS_UP = 4


def resolve(formulas: Sequence[str], codec: CodecConfig,
            formula_units: int | None) -> tuple[list[tuple[str, str, list[CellComposition]]], list[tuple[str, str]]]:
    """The compositions the codec holds as ``(formula, label, cells)`` (duplicates dropped) and the refused ones
    as ``(formula, reason)``."""
    kept, refused, seen = [], [], set()
    for formula in formulas:
        try:
            cells = cell_compositions(formula, codec, formula_units)
            fixed_units = formula_units is not None or (len(cells) == 1 and cells[0].formula_units > 1)
            label = check_label(composition_label(cells, fixed_units))  # it becomes a folder name
        except RecordError as err:
            refused.append((formula, f"does not fit the codec: {err.reason.replace('_', ' ')} "
                                     f"({str(err).split(': ', 2)[-1]})"))
            continue
        except ValueError as err:
            refused.append((formula, str(err)))
            continue
        if label in seen:
            log.warning("%s: same composition as an earlier one (%s), done once", formula, label)
            continue
        seen.add(label)
        kept.append((formula, label, cells))
    return kept, refused


def task_formulas(config: PredictConfig, task: int) -> list[str]:
    """Formulas of array task ``task``: every ``n_tasks``-th one, starting at ``task``."""
    return config.compositions[task::config.n_tasks]


def write_plan(out: Path, config: PredictConfig, force_redo: bool = False) -> PredictConfig:
    """Write ``predict.json``; refuse one made with other sampling settings unless ``force_redo`` (compositions
    may be added)."""
    path = out / PLAN_NAME
    if path.exists() and not force_redo:
        stored = read_plan(out)
        old, new = stored.sampling_settings(), config.sampling_settings()
        changed = [key for key in new if old.get(key) != new.get(key)]
        if changed:
            raise ValueError(f"{path} was made with other settings ({', '.join(changed)}): use a new --out, or "
                             f"--force-redo to make every composition again")
    atomic_write_json(path, config.to_dict())
    return config


def read_plan(out: str | Path) -> PredictConfig:
    """The run's ``predict.json`` (FileNotFoundError naming it when missing)."""
    path = Path(out) / PLAN_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run predict on this --out first")
    return config_from_dict(PredictConfig, read_json(path, "predict plan"), str(path))


def run_predict_task(out_dir: str | Path, task: int) -> list[str]:
    """Do (or resume) the compositions of array task ``task`` of the run in ``out_dir``; return their labels.

    The picklable entry point of a predict array task; the model is loaded only when something is left to do.
    """
    out = Path(out_dir)
    config = read_plan(out)
    with task_lock(out, f"predict-{task:05d}", f"predict task {task} of {out}"):
        return _run_formulas(out, config, task_formulas(config, task))


def _run_formulas(out: Path, config: PredictConfig, formulas: Sequence[str],
                  loaded: LoadedModel | None = None) -> list[str]:
    from pccd_hpc.sampling.checkpoint_sampler import CheckpointSampler, load_model, pick_device

    state: dict[str, Any] = {}

    def sampler():
        if "sampler" not in state:
            model = loaded or load_model(config.checkpoint, pick_device())
            if model.sha256 != config.checkpoint_sha256:
                raise ValueError(f"{config.checkpoint} changed since {out / PLAN_NAME} was made (sha256 differs)")
            state["sampler"] = CheckpointSampler(model, "ddim", config.steps, config.guidance)
        return state["sampler"]

    codec = CodecConfig.from_dict(config.codec)
    kept, refused = resolve(formulas, codec, config.formula_units)
    for formula, reason in refused:
        log.error("%s: %s", formula, reason)
    done = []
    for formula, label, cells in kept:
        folder = composition_folder(out, label)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder)
        started = time.perf_counter()
        settings = config.sampling_settings()
        problem = candidates_problem(folder, settings)
        if problem is None:
            candidates = read_candidates(folder)
            log.info("%s: candidates verified, not sampled again", formula)
        else:
            log.info("%s: sampling %d candidates (%s)", formula, config.k, problem)
            candidates = make_candidates(folder, formula, cells, config.k, sampler(), codec,
                                         composition_seed(config.seed, label), config.push_apart_factor)
            write_marker(folder, "candidates.json", settings,
                         ["candidates.csv", *[f"cifs/{rid}.cif" for rid, _ in candidates]],
                         {"formula": formula, "label": label, "n_valid": len(candidates),
                          "sampling_wall_s": round(time.perf_counter() - started, 3)})
        if config.relax:
            _rank(folder, formula, candidates, config)
        done.append(label)
    return done


def _rank(folder: Path, formula: str, candidates, config: PredictConfig) -> None:
    from pccd_hpc.materials.energy_ranking import make_relaxer
    from pccd_hpc.predict.ranking import RANKING_COLUMNS, rank_records, relax_candidates

    settings = {**config.sampling_settings(), **config.ranking_settings()}
    if marker_problem(folder, "ranking.json", settings) is None:
        log.info("%s: ranking verified", formula)
        return
    details: dict[str, Any] = {}
    relax = make_relaxer(config.backend, config.relax_steps, details=details)
    records = relax_candidates(folder, candidates, relax, details)
    made = {row["id"]: row for row in read_candidate_rows(folder)}
    rows = [{**r, **{key: made[r["id"]][key] for key in ("formula", "formula_units", "n_sites")},
             "candidate_cif": made[r["id"]]["cif"]} for r in rank_records(records)]
    atomic_write_csv(folder / "ranking.csv", rows, RANKING_COLUMNS)
    best = rows[0] if rows and rows[0].get("energy_ev_per_atom") is not None else None
    write_marker(folder, "ranking.json", settings, ["ranking.csv"],
                 {"best": best, "runners_up": [r["id"] for r in rows[1:1 + RUNNERS_UP]]})
    log.info("%s: best guess %s (%s eV/atom)", formula, best and best["id"], best and best["energy_ev_per_atom"])


def summarise(out: Path, config: PredictConfig, codec: CodecConfig) -> list[dict[str, Any]]:
    """Write ``summary.csv`` and ``summary.json``: one row per formula of the run (done, refused or pending)."""
    kept, refused = resolve(config.compositions, codec, config.formula_units)
    rows: list[dict[str, Any]] = [{"formula": f, "status": "refused", "reason": reason} for f, reason in refused]
    for formula, label, cells in kept:
        folder = composition_folder(out, label)
        row: dict[str, Any] = {"formula": formula, "label": label, "folder": str(folder.relative_to(out)),
                               "formula_units": " ".join(str(c.formula_units) for c in cells)}
        problem = candidates_problem(folder, config.sampling_settings())
        if problem is None and config.relax:
            problem = marker_problem(folder, "ranking.json", {**config.sampling_settings(), **config.ranking_settings()})
        if problem is not None:
            rows.append({**row, "status": "pending", "reason": problem})
            continue
        marker = read_json(folder / "candidates.json", "completion record")
        row.update(status="done", reason="", n_candidates=config.k, n_valid=marker.get("n_valid"))
        if config.relax:
            ranking = read_json(folder / "ranking.json", "completion record")
            best = ranking.get("best") or {}
            row.update(best_id=best.get("id", ""), best_energy_ev_per_atom=best.get("energy_ev_per_atom", ""),
                       best_space_group=best.get("space_group", ""), runners_up=" ".join(ranking.get("runners_up", [])))
        rows.append(row)
    order = {f: i for i, f in enumerate(config.compositions)}
    rows.sort(key=lambda r: order.get(r["formula"], len(order)))
    atomic_write_csv(out / "summary.csv", rows, SUMMARY_COLUMNS)
    atomic_write_json(out / "summary.json", {"settings": config.to_dict(), "compositions": rows,
                                             "n_done": sum(r["status"] == "done" for r in rows),
                                             "n_refused": len(refused),
                                             "n_pending": sum(r["status"] == "pending" for r in rows)})
    return rows


def run_predict(config: PredictConfig, out_dir: str | Path, slurm: SlurmResources | None = None,
                loaded: LoadedModel | None = None, force_redo: bool = False,
                wait: bool = True) -> list[dict[str, Any]] | None:
    """Run (or resume) a prediction here, or with ``slurm`` as a submitit array of ``config.n_tasks`` tasks; return
    the summary rows, or None when the array was left running (``wait`` False: re-run to merge)."""
    out = checked_output_dir(out_dir, "--out")
    codec = CodecConfig.from_dict(config.codec)
    with folder_lock(out, f"predict --out {out}"):
        write_plan(out, config, force_redo)
        if slurm is None:
            _run_formulas(out, config, config.compositions, loaded)
    if slurm is not None:  # the array tasks take the folder lock shared, each with its own task lock
        from pccd_hpc.cluster.jobs import run_folder_tasks

        tasks = list(range(min(config.n_tasks, len(config.compositions))))
        if not run_folder_tasks(run_predict_task, out, tasks, slurm, "pccd-predict", "predict tasks", wait):
            return None
    return summarise(out, config, codec)
