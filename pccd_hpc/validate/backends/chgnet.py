"""CHGNet (pretrained weights ship in the wheel, so it loads offline): the default backend."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pccd_hpc.validate.backends.base import AseBackend

log = logging.getLogger(__name__)


class CHGNetBackend(AseBackend):
    """CHGNet universal potential through its ASE calculator (energies trained on MP2020-corrected PBE)."""

    name: ClassVar[str] = "chgnet"
    defaults: ClassVar[dict[str, Any]] = {"device": "cpu", "model_path": None, "torch_threads": 1}

    def make_calculator(self):
        """Load CHGNet (bundled weights, or ``model_path``) and wrap it as an ASE calculator."""
        import torch
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        # Throughput comes from processes, not threads or batches, on CPU.
        torch.set_num_threads(int(self.options["torch_threads"]))
        path = self.options["model_path"]
        model = CHGNet.from_file(path) if path else CHGNet.load(verbose=False)
        return CHGNetCalculator(model=model, use_device=self.options["device"])
