"""The declared public surface (README, docs/architecture.md) and the one-way imports, read
from the sources with ``ast``."""
import ast
import importlib
from pathlib import Path

import pytest

import biohash_index

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "biohash_index"
PUBLIC_MODULES = ("store", "dask", "datasets", "evaluation", "plots", "cli")
DOCS = ("README.md", "docs/architecture.md")


def package_modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def imports(path: Path):
    """(module, imported names) of every absolute import in a source file, function-level
    imports included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, tuple(alias.name for alias in node.names)


def sources(*patterns: str) -> list[Path]:
    paths = [p for pattern in patterns for p in ROOT.glob(pattern)]
    return sorted(p for p in paths if not any(part.startswith(".") or part == "build"
                                              for part in p.relative_to(ROOT).parts))


# ---------------------------------------------------------------- the public surface
def test_every_module_but_the_public_ones_is_private_by_name():
    public = [m for m in package_modules() if not m.startswith("_")]
    assert sorted(public) == sorted(PUBLIC_MODULES)


@pytest.mark.parametrize("module", ["", *PUBLIC_MODULES])
def test_every_name_in_all_exists(module):
    if module == "dask":
        pytest.importorskip("dask.dataframe")
    mod = importlib.import_module("biohash_index" + (f".{module}" if module else ""))
    assert len(set(mod.__all__)) == len(mod.__all__) > 0
    assert [name for name in mod.__all__ if not hasattr(mod, name)] == []


@pytest.mark.parametrize("doc", DOCS)
def test_the_docs_list_the_public_surface(doc):
    text = (ROOT / doc).read_text()
    assert [name for name in biohash_index.__all__ if f"`{name}`" not in text] == []
    assert [m for m in PUBLIC_MODULES if f"biohash_index.{m}" not in text
            and f"`{m}`" not in text] == []


def test_the_architecture_lists_the_store_surface_and_every_module():
    text = (ROOT / "docs/architecture.md").read_text()
    from biohash_index import store
    assert [name for name in store.__all__ if f"`{name}`" not in text] == []
    private = [m for m in package_modules() if m.startswith("_") and not m.startswith("__")]
    assert [m for m in private if f"`{m}`" not in text] == []


def test_integrations_and_examples_import_only_the_public_surface():
    public = {"biohash_index", *(f"biohash_index.{m}" for m in PUBLIC_MODULES)}
    used = []
    for path in sources("integrations/**/*.py", "examples/*.py"):
        for module, names in imports(path):
            if module.split(".")[0] != "biohash_index":
                continue
            where = path.relative_to(ROOT)
            assert module in public, f"{where} imports the private {module}"
            exported = importlib.import_module(module).__all__
            for name in names:
                assert name in exported or f"{module}.{name}" in public, \
                    f"{where} imports {name}, not in {module}.__all__"
            used.append(module)
    assert "biohash_index.store" in used   # the integrations were read


def test_benchmarks_use_nothing_private_of_an_object():
    """Benchmarks may import private modules to time internals, but access no attribute
    whose name begins with one underscore (a private function, method or field)."""
    found = []
    for path in sources("benchmarks/*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([node.attr] if isinstance(node, ast.Attribute) else
                     [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}:{node.lineno} {n}" for n in names
                      if n.startswith("_") and not n.startswith("__")]
    assert found == []


# ---------------------------------------------------------------- one-way imports
def package_imports() -> dict[str, set[str]]:
    """{module: the package modules it imports}, function-level imports included; ``from .
    import name`` imports the module ``name`` if there is one, else ``__init__``."""
    modules = set(package_modules())
    graph = {}
    for name in modules:
        deps = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (
                    node.level == 0 and node.module.split(".")[0] == "biohash_index")):
                sub = node.module if node.level else node.module.partition(".")[2]
                if sub:
                    deps.add(sub.split(".")[0])
                else:
                    deps |= {a.name if a.name in modules else "__init__" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.partition(".")[2].split(".")[0] or "__init__"
                         for a in node.names if a.name.split(".")[0] == "biohash_index"}
        graph[name] = deps - {name}
    return graph


def test_imports_within_the_package_form_no_cycle():
    graph = package_imports()
    assert graph["_version"] == set() and "_index" in graph["__init__"]   # the graph was read
    state = {}   # module -> "open" while on the path, "done" once all it imports are done

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph[module]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join(
                path[path.index(dep):] + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
