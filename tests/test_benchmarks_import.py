"""The benchmark scripts still import after the library moves things: each is loaded (not run),
and every `from agcn_cli... import name` in it, function-level ones included, must resolve, so a
renamed or removed library name fails here rather than on the day someone measures."""

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_script_imports(path, monkeypatch):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)  # defines its functions; main() runs only under __main__
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("agcn_cli"):
            target = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(target, a.name)]
            assert not missing, f"{path.name}:{node.lineno}: {node.module} has no {', '.join(missing)}"
