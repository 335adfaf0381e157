"""The package's shape: stages import only earlier stages, nothing branches on a problem-type name.

Read from the source with ``ast`` (nothing is imported), so a violation names the file and line.
The order is ARCHITECTURE.md's: shared helpers → problems → spec → candidates → workspace →
data → search → evaluate → deploy → finish → pipeline → cli.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "specweave_ray"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exceptions", "_fs", "metrics"),   # shared helpers, imported by everyone
    ("problems",),
    ("spec",),
    # Estimator families and the feature pipeline: a library the stages below use. It sits
    # under workspace because records save models in their native formats (serialization).
    ("candidates", "features"),
    ("workspace",),
    ("data",),
    ("search",),
    ("evaluate",),
    ("deploy",),
    ("finish",),
    ("pipeline",),
    ("cli", "__main__"),
)
# Kept at their old paths so stored records and packages keep loading (ARCHITECTURE.md).
SHIMS = {"predictor"}
PROBLEM_NAMES = {"classification", "regression", "timeseries", "recommendation"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _rank(module: str) -> int | None:
    top = module.split(".")[1] if "." in module else None
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None


def _imports(module: str, path: Path, *, typing_too: bool = False) -> list[tuple[str, int, bool]]:
    """(imported specweave_ray module, line, at module level) for every import in ``path``;
    ``typing_too`` adds those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    type_checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_checking and not typing_too:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from pkg import sub" imports the module pkg.sub (its facade runs first, but the
            # edge that matters for cycles is the one to the module named)
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target
                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(n, node.lineno, id(node) in top) for n in names if n.startswith("specweave_ray.")]
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if m != "specweave_ray" and _rank(m) is None
                and m.split(".")[1] not in SHIMS]
    assert not unplaced, f"modules outside the stage order (add them to LAYERS and ARCHITECTURE.md): {unplaced}"


def test_no_import_points_back_up_the_stage_order() -> None:
    wrong = []
    for module, path in _modules().items():
        own = _rank(module)
        if own is None:  # the lazy public API and the shims may import any stage
            continue
        for target, line, _ in _imports(module, path):
            theirs = _rank(target)
            if theirs is not None and theirs > own:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}")
    assert not wrong, "imports against the stage order:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        # a circle drawn only for type hints is still two modules that need each other
        for target, _, _ in _imports(module, path, typing_too=True):
            while target not in modules and "." in target:  # "pkg.module.name" → "pkg.module"
                target = target.rpartition(".")[0]
            if target != module and target in modules:
                graph[module].add(target)
    # A package's facade imports its own modules; a module importing its facade back is a cycle.
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_own_imports_sit_at_module_level() -> None:
    """Imports of the package's own modules are at the top; the lazy public API (the package's
    and ``candidates``' ``__getattr__``), the torch MLP (torch loads on use) and the command
    (each command loads the stages it runs, so ``--help`` starts in 0.06 s, not 1.7 s) are the
    exceptions."""
    inner = []
    for module, path in _modules().items():
        if module in ("specweave_ray", "specweave_ray.candidates", "specweave_ray.cli"):
            continue
        for target, line, at_top in _imports(module, path):
            if not at_top and "torch_mlp" not in target:
                inner.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}")
    assert not inner, "imports hidden inside functions:\n" + "\n".join(inner)


def _type_name_comparisons(tree: ast.AST) -> list[tuple[int, str]]:
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, right in zip(node.ops, node.comparators, strict=True):
                literals = [n for n in ast.walk(right) if isinstance(n, ast.Constant)] \
                    if isinstance(op, (ast.In, ast.NotIn)) else []
                literals += [o for o in operands if isinstance(o, ast.Constant)] \
                    if isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)) else []
                hits += [(node.lineno, lit.value) for lit in literals if lit.value in PROBLEM_NAMES]
        elif isinstance(node, ast.match_case):
            hits += [(node.pattern.lineno, n.value) for n in ast.walk(node.pattern)
                     if isinstance(n, ast.Constant) and n.value in PROBLEM_NAMES]
    return hits


def test_nothing_outside_problems_branches_on_a_problem_type_name() -> None:
    hits = []
    for module, path in _modules().items():
        if module.startswith("specweave_ray.problems"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hits += [f"{path.relative_to(PACKAGE.parent)}:{line}: compares with {value!r}"
                 for line, value in _type_name_comparisons(tree)]
    assert not hits, ("decisions that belong to a problem type's plug-in (specweave_ray/problems/):\n"
                      + "\n".join(hits))


@pytest.mark.parametrize("code", [
    "if problem_type == 'classification': pass",
    "ok = 'regression' != kind",
    "if kind in ('regression', 'timeseries'): pass",
    "x = kind not in {'recommendation'}",
    "match kind:\n    case 'classification': pass",
])
def test_the_branching_check_sees_each_form(code: str) -> None:
    assert _type_name_comparisons(ast.parse(code))


def test_the_branching_check_passes_declarations_and_messages() -> None:
    code = ("name = 'classification'\nprint(f'{name} needs two classes')\n"
            "x = problem.output == 'probabilities'\n")
    assert not _type_name_comparisons(ast.parse(code))


def test_only_search_ray_imports_ray_tune_and_only_deploy_serve_imports_ray_serve() -> None:
    allowed = {"ray.tune": "specweave_ray.search._ray", "ray.serve": "specweave_ray.deploy.serve"}
    wrong = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                for ray_part, owner in allowed.items():
                    if (name == ray_part or name.startswith(ray_part + ".")) and not module.startswith(owner):
                        wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {name}")
    assert not wrong, wrong
