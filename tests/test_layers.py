"""The package's floors, checked from the source: who may import whom (ARCHITECTURE.md).

Read with `ast`, so function-level imports count as much as the ones at the top.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agcn_cli"
# lowest first; a module imports only its own floor and the ones below
FLOORS = ("base", "skeleton", "pose", "io", "sources", "models", "engine", "evaluation", "viz", "cli")
BASE = {"agcn_cli", "agcn_cli.errors", "agcn_cli.specs"}
THIRD_PARTY_CLI = {"typer", "rich", "click"}
HEAVY = {"torch", "h5py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> str:
    if module in BASE:
        return "base"
    if module == "agcn_cli.__main__":  # `python -m agcn_cli` runs the command line
        return "cli"
    return module.split(".")[1]


def imports(path: Path) -> list[str]:
    """Every module `path` imports (absolute names), at any depth of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append(target)
            # `from . import x` / `from .pkg import mod` name modules too
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists():
                    found.append(candidate)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {m: [i for i in imports(p) if i.startswith("agcn_cli")] for m, p in MODULES.items()}


def test_every_module_is_on_a_floor():
    for module in MODULES:
        assert floor(module) in FLOORS, f"{module} is not on a known floor ({', '.join(FLOORS)})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_floor(module):
    own = FLOORS.index(floor(module))
    higher = [i for i in GRAPH[module] if i != "agcn_cli" and FLOORS.index(floor(i)) > own]
    assert not higher, f"{module} ({floor(module)}) imports a higher floor: {', '.join(higher)}"


def test_skeleton_is_pure_numpy():
    for module, path in MODULES.items():
        if floor(module) == "skeleton":
            heavy = [i for i in imports(path) if i.split(".")[0] in HEAVY]
            assert not heavy, f"{module} imports {', '.join(heavy)}; skeleton/ is pure numpy"


def test_only_the_cli_imports_typer_or_rich():
    for module, path in MODULES.items():
        if floor(module) != "cli":
            found = [i for i in imports(path) if i.split(".")[0] in THIRD_PARTY_CLI]
            assert not found, f"{module} imports {', '.join(found)}; only agcn_cli.cli may"


def test_no_import_cycles():
    def package_of(m: str) -> str:  # an import of a package runs its __init__ only
        return m if m in MODULES else m.rsplit(".", 1)[0]

    edges = {m: {package_of(i) for i in targets if package_of(i) in MODULES and package_of(i) != m}
             for m, targets in GRAPH.items()}  # fmt: skip
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if n == "agcn_cli":
                continue
            if state[n] == 1:
                cycle = stack[stack.index(n) :] + [n]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if state[n] == 0:
                visit(n)
        stack.pop()
        state[m] = 2

    for module in sorted(edges):
        if state[module] == 0:
            visit(module)


def test_one_home_per_public_name():
    """No two modules define a public function, class or constant of the same name (`main` of a
    package entry point aside)."""
    homes: dict[str, list[str]] = defaultdict(list)
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                homes[node.name].append(module)
            elif isinstance(node, ast.Assign):  # public constants too (one FORMAT, one LAYOUT...)
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                homes.update({n: homes[n] + [module] for n in names if n.isupper() and not n.startswith("_")})
    twice = {name: mods for name, mods in homes.items() if len(mods) > 1 and name != "main"}
    assert not twice, f"defined in several modules: {twice}"


def test_tests_import_helpers_as_a_package():
    for path in (PACKAGE.parent / "tests").rglob("*.py"):
        assert "sys.path" + ".insert" not in path.read_text(), f"{path}: import tests.helpers / tests.reference instead"
