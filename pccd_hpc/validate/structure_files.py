"""The relaxed candidates as files a user opens directly: ``VDIR/relaxed/<stem>.cif`` and, beside it,
``<stem>_symmetrized.cif`` (refined to the space group spglib finds at :data:`pccd_hpc.data.symmetry.SYMPREC_ANG`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pccd_hpc.data.symmetry import SYMPREC_ANG, non_p1_fraction, SpaceGroup
from pccd_hpc.io_utils import atomic_write_text
from pccd_hpc.validate.record import ValidationRecord
from pccd_hpc.records import record_stem

RELAXED_DIR = "relaxed"


def relaxed_cif_paths(out_dir: str | Path, record_id: str) -> tuple[Path, Path]:
    """Where ``record_id``'s relaxed CIF and its symmetrised CIF are written."""
    stem = record_stem(record_id)
    folder = Path(out_dir) / RELAXED_DIR
    return folder / f"{stem}.cif", folder / f"{stem}_symmetrized.cif"


def write_relaxed_cifs(records: Sequence[ValidationRecord], out_dir: str | Path) -> int:
    """Write the relaxed and symmetrised CIF of every record that has them (atomically); return how many records."""
    written = 0
    for record in records:
        if not record.relaxed_cif:
            continue
        relaxed, symmetrized = relaxed_cif_paths(out_dir, record.id)
        relaxed.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(relaxed, record.relaxed_cif)
        if record.symmetrized_cif:
            atomic_write_text(symmetrized, record.symmetrized_cif)
        written += 1
    return written


def symmetry_metrics(records: Sequence[ValidationRecord]) -> dict[str, float | None]:
    """Share of non-P1 candidates as given (generated) and after relaxation, at the stated tolerance."""

    def groups(numbers: list[int | None]) -> list[SpaceGroup | None]:
        return [None if n is None else SpaceGroup("", int(n)) for n in numbers]

    relaxed = [r for r in records if r.relaxed_cif]
    return {"space_group_symprec_ang": SYMPREC_ANG,
            "non_p1_as_generated": non_p1_fraction(groups([r.space_group_number_initial for r in records])),
            "non_p1_after_relaxation": non_p1_fraction(groups([r.space_group_number_relaxed for r in relaxed]))}
