"""Failures of one structure's calculation, each naming the record (or candidate and step) it belongs to."""

from __future__ import annotations


class ValidationFailure(Exception):
    """A user-facing failure for one record; the batch records it and goes on."""

    kind = "failed"

    def __init__(self, record_id: str, message: str) -> None:
        super().__init__(f"{record_id}: {message}")
        self.record_id = record_id
        self.message = message


class RelaxationDiverged(ValidationFailure):
    """Forces or energy became non-finite or exploded, or the cell blew up."""

    kind = "diverged"


class RelaxationTimeout(ValidationFailure):
    """The relaxation ran past its wall-clock limit."""

    kind = "timeout"


class PhononFailure(ValidationFailure):
    """The phonon calculation could not be set up or run."""

    kind = "phonon_failed"


class VaspOutputError(ValidationFailure):
    """A VASP run folder holds no readable, finished output."""

    kind = "vasp_output"


class StepFailure(Exception):
    """One step of one followup candidate failed; the message names both. The batch records it and goes on."""

    def __init__(self, candidate: str, step: str, message: str) -> None:
        super().__init__(f"{candidate} [{step}]: {message}")
        self.candidate = candidate
        self.step = step
        self.message = message
