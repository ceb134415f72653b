"""The package's shape: no import cycle (lazy imports included), no stage importing another, lower layers below
every stage, data/ below the rest, SLURM calls in cluster/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pccd_hpc"
SUBMIT_NAMES = {"submitit", "sbatch", "map_array", "executor_for", "make_submitit_executor"}

STAGES = ("commands", "evaluate", "followup", "generate", "predict", "report", "train", "validate")
"""Stage packages (and commands.py, the encode and info subcommands): they meet through files only."""
LOWER_LAYERS = ("cluster", "config", "data", "folder_lock", "io_utils", "materials", "model", "pictures", "plotting",
                "progress", "records", "sampling", "stage_config")
"""Shared code below the stages; none of it imports a stage."""
TOP = ("launch",)
"""The one CLI, above everything: it wires every stage's cli."""

def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    nodes, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules imported anywhere in the file (top level, inside functions, or via importlib strings)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return _imports_of_source(path.read_text(), package, modules)


def _imports_of_source(source: str, package: str, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``source`` (a module of ``package``) imports."""
    found = set()
    for node in _runtime_nodes(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("pccd_hpc."):
            names = [node.value.split(":")[0]]  # importlib.import_module("pccd_hpc...."), "module:Class" registries
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != "pccd_hpc":
                found.add(name)
    return found


def _layer(module: str) -> str:
    """The top-level name under ``pccd_hpc`` a module belongs to (``""`` for the package itself)."""
    return module.split(".")[1] if "." in module else ""


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_sees_lazy_and_importlib_imports() -> None:
    graph = _graph()
    assert "pccd_hpc.commands" in graph["pccd_hpc.launch"]  # named in a string, imported with importlib
    assert "pccd_hpc.cluster.jobs" in graph["pccd_hpc.generate.stage"]  # imported inside a function
    assert "pccd_hpc.materials.backends.vasp" in graph["pccd_hpc.materials.backends.registry"]  # "module:Class" string
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({_layer(m) for m in _graph()} - set(STAGES) - set(LOWER_LAYERS) - set(TOP) - {""})
    assert not unplaced, f"place these in STAGES or LOWER_LAYERS (and docs/architecture.md): {unplaced}"


def _stage_crossings(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, import) pairs where a stage imports another stage."""
    return sorted((m, d) for m, deps in graph.items() for d in deps
                  if _layer(m) in STAGES and _layer(d) in STAGES and _layer(d) != _layer(m))


def _lower_to_stage(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, import) pairs where a lower layer imports a stage (or the CLI)."""
    return sorted((m, d) for m, deps in graph.items() for d in deps
                  if _layer(m) in LOWER_LAYERS and _layer(d) in STAGES + TOP)


def test_the_layer_checks_see_lazy_and_importlib_crossings(tmp_path: Path) -> None:
    source = ("def later():\n    from pccd_hpc.validate.store import RecordStore\n\n"
              "BACKEND = 'pccd_hpc.report.page:build_report'\n")
    found = _imports_of_source(source, "pccd_hpc.followup", _modules())
    assert {"pccd_hpc.validate.store", "pccd_hpc.report.page"} <= found
    assert _stage_crossings({"pccd_hpc.followup.x": found}) == [("pccd_hpc.followup.x", "pccd_hpc.report.page"),
                                                                 ("pccd_hpc.followup.x", "pccd_hpc.validate.store")]
    assert _lower_to_stage({"pccd_hpc.materials.x": found, "pccd_hpc.validate.y": {"pccd_hpc.materials.x"}}) == [
        ("pccd_hpc.materials.x", "pccd_hpc.report.page"), ("pccd_hpc.materials.x", "pccd_hpc.validate.store")]


def test_no_stage_imports_another_stage() -> None:
    crossing = _stage_crossings(_graph())
    assert not crossing, crossing


def test_lower_layers_import_no_stage() -> None:
    bad = _lower_to_stage(_graph())
    assert not bad, bad


def test_data_imports_no_stage_above_it() -> None:
    forbidden = ("pccd_hpc.cluster", "pccd_hpc.generate", "pccd_hpc.train", "pccd_hpc.validate", "pccd_hpc.report")
    bad = {m: sorted(d for d in deps if d.startswith(forbidden))
           for m, deps in _graph().items() if m.startswith("pccd_hpc.data")}
    assert not any(bad.values()), {m: d for m, d in bad.items() if d}


def test_submitit_and_sbatch_only_in_cluster() -> None:
    offenders = _submit_offenders()
    assert not offenders, offenders


def _submit_offenders() -> list[str]:
    offenders = []
    for name, path in _modules().items():
        if name.startswith("pccd_hpc.cluster"):
            continue
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                used = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                used = {(node.module or "").split(".")[0]} | {a.name for a in node.names}
            elif isinstance(node, ast.Attribute):
                used = {node.attr}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used = {node.value} if node.value in ("sbatch", "srun", "scancel") else set()
            else:
                continue
            offenders += [f"{name}:{node.lineno}: {u}" for u in used & (SUBMIT_NAMES | {"srun", "scancel"})]
    return offenders
