"""The package's shape: no import cycle (lazy imports included), data/ below the stages, SLURM calls in cluster/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pccd_hpc"
SUBMIT_NAMES = {"submitit", "sbatch", "map_array", "executor_for", "make_submitit_executor"}


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
    found = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text())):
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
    assert "pccd_hpc.validate.backends.vasp" in graph["pccd_hpc.validate.backends.registry"]  # "module:Class" string
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_data_imports_no_stage_above_it() -> None:
    forbidden = ("pccd_hpc.cluster", "pccd_hpc.generate", "pccd_hpc.train", "pccd_hpc.validate", "pccd_hpc.report")
    bad = {m: sorted(d for d in deps if d.startswith(forbidden))
           for m, deps in _graph().items() if m.startswith("pccd_hpc.data")}
    assert not any(bad.values()), {m: d for m, d in bad.items() if d}


def test_sampling_layer_imports_no_stage() -> None:
    stages = ("pccd_hpc.train", "pccd_hpc.generate", "pccd_hpc.evaluate", "pccd_hpc.validate", "pccd_hpc.report",
              "pccd_hpc.followup", "pccd_hpc.commands", "pccd_hpc.launch")
    bad = {m: sorted(d for d in deps if d.startswith(stages))
           for m, deps in _graph().items() if m.startswith(("pccd_hpc.sampling", "pccd_hpc.model"))}
    assert not any(bad.values()), {m: d for m, d in bad.items() if d}


def test_generate_and_evaluate_do_not_import_each_other() -> None:
    graph = _graph()
    pairs = (("pccd_hpc.evaluate", "pccd_hpc.generate"), ("pccd_hpc.generate", "pccd_hpc.evaluate"))
    bad = {m: sorted(d for d in deps if d.startswith(other))
           for here, other in pairs for m, deps in graph.items() if m.startswith(here)}
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
