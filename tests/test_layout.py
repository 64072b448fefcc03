"""The package layout keeps its shape: no import circles in bench/ and baselines/, no module over 400
lines, the built-in entries registered through the same entry points as plugins (and found without
them), and plugins served by the package face alone."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "baselines")
MAX_LINES = 400


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules one module imports anywhere in its body: top-level and inside functions,
    `from x import submodule`, relative imports, and every string that names a project submodule (what
    importlib.import_module receives, directly or from a table such as the catalogue's BUILTIN)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            submodules = {f"{source}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):  # some names are attributes of `source` itself
                found.add(source)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value and node.value in known:
            found.add(node.value)  # a submodule named in a string is imported by name: import_module("..."), a table of modules
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus modules that import themselves."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_every_kind_of_import():
    """The checker itself: circles are found, and the graph holds imports inside functions, modules
    imported by name and submodules imported from their package."""
    graph = {"bench.a": {"bench.b"}, "bench.b": set()}
    assert circles(graph) == []
    graph["bench.b"].add("bench.a")
    assert circles(graph) == [["bench.a", "bench.b"]]
    real = import_graph()
    assert "bench.models.hyperres" in real["bench.models.catalog"]  # a module name in a table for import_module
    assert "bench.models.catalog" in real["bench"]  # the package face's lazy exports
    assert "bench.training.trainer" in real["bench.training.grid"]  # an import inside a method
    assert "bench.tasks.degradations" in real["bench.tasks.task"]  # `from package import submodule`


def test_no_import_circles():
    found = circles(import_graph())
    assert not found, "modules that import each other (directly or through others): " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_over_400_lines():
    long = {name: n for name, path in module_files().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these along a real seam (at most {MAX_LINES} lines each): {long}"


def test_the_registry_imports_no_model():
    graph = import_graph()
    assert graph["bench.models.registry"] <= {"bench.common.errors"}, graph["bench.models.registry"]


def test_builtin_entries_are_the_distributions_entry_points():
    from bench.models.catalog import BUILTIN, ENTRY_POINT_GROUP

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert declared == BUILTIN


def _list_models_with(entry_points_code: str) -> list[str]:
    """list_models() in a fresh interpreter whose importlib.metadata.entry_points is replaced."""
    code = (
        "import importlib.metadata as md, warnings\n"
        "warnings.simplefilter('error')\n"  # a stale entry point must not even warn
        f"{entry_points_code}\n"
        "from bench import list_models\n"
        "print(','.join(list_models()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(",")


@pytest.mark.parametrize("metadata", ["absent", "stale"])
def test_builtin_models_found_without_good_entry_point_metadata(metadata):
    from bench.models.catalog import ENTRY_POINT_GROUP

    if metadata == "absent":  # a tree run without installing it
        ours = "[]"
    else:  # an editable install made before the modules moved: the old module paths
        ours = (f"[md.EntryPoint(n, 'bench.' + n, {ENTRY_POINT_GROUP!r}) for n in ('hyperres', 'noisenet')]"
                f" + [md.EntryPoint('plain', 'baselines.control', {ENTRY_POINT_GROUP!r})]")
    patch = (f"real, ours = md.entry_points, {ours}\n"  # other groups (torch's backends) as installed
             f"md.entry_points = lambda **kw: ours if kw.get('group') == {ENTRY_POINT_GROUP!r} else real(**kw)")
    names = _list_models_with(patch)
    assert {"hyperres", "noisenet", "plain", "perlevel", "adafm", "cfsnet", "dni", "cresmd", "hinet", "ffdnet"} <= set(names)


def _bench_imports(code: str) -> set[str]:
    """Modules of bench that code imports (`from bench import x` counts as `bench`)."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "bench")
    return found


def test_the_toy_plugin_and_the_guide_use_only_the_package_face():
    import bench

    plugin = ROOT / "tests" / "fixtures" / "toy_baseline" / "toy_baseline" / "__init__.py"
    assert _bench_imports(plugin.read_text()) == {"bench"}
    guide = (ROOT / "docs" / "adding-a-baseline.md").read_text()
    blocks = [b.split("```")[0] for b in guide.split("```python")[1:]]
    assert set().union(*(_bench_imports(b) for b in blocks)) == {"bench"}
    for block in blocks:  # every name the guide imports from bench is exported there
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module == "bench":
                assert all(hasattr(bench, a.name) for a in node.names), [a.name for a in node.names]


def test_importing_the_face_loads_no_model_code():
    """`import bench` is cheap (every command line start does it): torch loads only when a name is used."""
    code = "import sys, bench; assert 'torch' not in sys.modules; bench.register_model; print(sorted(bench.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("register_model", "create_model", "list_models", "register_protocol", "as_level_tensor", "check_input", "PerLevelBank"):
        assert name in out.stdout
