"""CHGNet (pretrained weights ship in the wheel, so it loads offline): the default backend.

Relaxations use :class:`InferenceCHGNetCalculator`: the same model and the same energies, forces and
stresses as CHGNet's own ASE calculator (a test holds them equal), computed for inference: one
backward pass gives forces and stress together, without the second-order graph that CHGNet builds
for training, and without the magnetic-moment head. Its message-passing layers are computed in a
cheaper order (``chgnet_factored``: the same function up to float32 rounding); ``{"factored_layers":
False}`` keeps CHGNet's own layers. Its crystal graphs are built with array operations
(``chgnet_graph``: the same graphs, element by element); ``{"array_graphs": False}`` uses CHGNet's
converter. ``{"calculator": "chgnet"}`` selects CHGNet's own calculator.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from pccd_hpc.materials.backends.base import AseBackend
from pccd_hpc.materials.backends.chgnet_graph import crystal_graph

log = logging.getLogger(__name__)

EV_PER_ANG3_PER_GPA = 1.0 / 160.21766208


class InferenceCHGNetCalculator(Calculator):
    """Energy, forces and stress of a CHGNet model for one structure, with one backward pass."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model, *, array_graphs: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.array_graphs = array_graphs
        """Build crystal graphs with :func:`chgnet_graph.crystal_graph` (the same graphs, faster)."""
        # Forces and stress are gradients with respect to positions and strain only: with the weights out
        # of autograd, the forward pass keeps no activations for weight gradients (same numbers, less work).
        self.model = model.requires_grad_(False)
        self._composition_energy: tuple[tuple[int, ...], float] | None = None

    def calculate(self, atoms=None, properties=None, system_changes=all_changes) -> None:
        """Fill ``self.results`` (eV, eV/Å, eV/Å^3, as CHGNet's calculator with its default stress weight)."""
        import torch
        from chgnet.model.model import BatchedGraph
        from pymatgen.io.ase import AseAtomsAdaptor

        super().calculate(atoms, properties, system_changes)
        structure = AseAtomsAdaptor.get_structure(self.atoms)
        model = self.model
        graph = crystal_graph(model.graph_converter, structure) if self.array_graphs else model.graph_converter(structure)
        batched = BatchedGraph.from_graphs([graph], bond_basis_expansion=model.bond_basis_expansion,
                                           angle_basis_expansion=model.angle_basis_expansion, compute_stress=True)
        prediction = model._compute(batched)  # energy only: per atom for an intensive model
        n_atoms = len(structure)
        energy = prediction["e"].sum() * (n_atoms if model.is_intensive else 1)
        d_positions, d_strain = torch.autograd.grad(energy, [batched.atom_positions[0], batched.strains[0]])
        total = float(energy.detach()) + self._composition_energy_of(graph, n_atoms)
        volume = float(batched.volumes[0].detach())
        self.results = {"energy": total, "free_energy": total,
                        "forces": -d_positions.detach().cpu().numpy().astype(np.float64),
                        "stress": (d_strain.detach().cpu().numpy().astype(np.float64) / volume)}


    def _composition_energy_of(self, graph, n_atoms: int) -> float:
        """The composition model's energy (eV): it depends on the species only, so it is kept per species list."""
        model = self.model
        if model.composition_model is None:
            return 0.0
        species = tuple(int(z) for z in graph.atomic_number)
        if self._composition_energy is None or self._composition_energy[0] != species:
            import torch

            with torch.no_grad():
                value = float(model.composition_model([graph]).sum()) * (n_atoms if model.is_intensive else 1)
            self._composition_energy = (species, value)
        return self._composition_energy[1]


class CHGNetBackend(AseBackend):
    """CHGNet universal potential through an ASE calculator (energies trained on MP2020-corrected PBE)."""

    name: ClassVar[str] = "chgnet"
    defaults: ClassVar[dict[str, Any]] = {"device": "cpu", "model_path": None, "torch_threads": 1, "calculator": "inference",
                                           "factored_layers": True, "array_graphs": True}

    def make_calculator(self):
        """Load CHGNet (bundled weights, or ``model_path``) and wrap it as an ASE calculator."""
        import torch
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        # Throughput comes from processes, not threads or batches, on CPU.
        torch.set_num_threads(int(self.options["torch_threads"]))
        path = self.options["model_path"]
        model = CHGNet.from_file(path) if path else CHGNet.load(verbose=False)
        if self.options["calculator"] == "inference":
            if self.options["factored_layers"]:
                model = _factored_or_as_is(model)
            return InferenceCHGNetCalculator(model.to(self.options["device"]), array_graphs=bool(self.options["array_graphs"]))
        if self.options["calculator"] != "chgnet":
            raise ValueError(f"backend 'chgnet': calculator must be 'inference' or 'chgnet', got {self.options['calculator']!r}")
        return CHGNetCalculator(model=model, use_device=self.options["device"])


def _factored_or_as_is(model):
    """``model`` with factored message-passing layers, or unchanged (with a warning) if its layout differs."""
    from pccd_hpc.materials.backends.chgnet_factored import factor_message_passing

    try:
        return factor_message_passing(model)
    except (AttributeError, ValueError) as exc:
        log.warning("CHGNet model: keeping its own message-passing layers (%s)", exc)
        return model
