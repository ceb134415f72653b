"""The one command line: ``python -m pccd_hpc.launch <subcommand> [options]``.

Each subcommand lives in its stage's ``cli`` module, which exposes ``register(subparsers)``;
this file only wires them together (no pipeline logic here).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from pccd_hpc import __version__
from pccd_hpc.folder_lock import FolderBusyError
from pccd_hpc.io_utils import DiskFullError

# Stage CLI modules, in pipeline order. Each exposes ``register(subparsers) -> None`` and sets
# ``func`` on its parser to a callable taking the parsed ``argparse.Namespace`` and returning an
# exit code.
CLI_MODULES: tuple[str, ...] = (
    "pccd_hpc.commands",
    "pccd_hpc.train.cli",
    "pccd_hpc.generate.cli",
    "pccd_hpc.predict.cli",
    "pccd_hpc.validate.cli",
    "pccd_hpc.followup.cli",
    "pccd_hpc.report.cli",
    "pccd_hpc.evaluate.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argparse parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m pccd_hpc.launch",
        description="PCCD crystal diffusion pipeline: encode -> train -> generate -> validate -> report.",
    )
    parser.add_argument("--version", action="version", version=f"pccd_hpc {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", metavar="<subcommand>", required=True)
    for module_name in CLI_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, NotADirectoryError, ValueError, FolderBusyError, DiskFullError) as err:
        logging.getLogger("pccd_hpc").error("%s", err)  # a sentence naming the file or folder, no traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
