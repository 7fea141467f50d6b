"""The declared public surface (docs/api.md, docs/architecture.md) and the one-way imports, read
from the sources with ``ast``."""
import ast
import importlib
from pathlib import Path

import pytest

import biohash_index

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "biohash_index"
PUBLIC_MODULES = ("store", "dask", "datasets", "evaluation", "plots", "cli")
DOCS = ("docs/api.md", "docs/architecture.md")


def package_modules() -> list[str]:
    """The top-level modules of the package (``__init__`` included)."""
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def all_modules() -> dict[str, Path]:
    """{dotted name within the package: file} of every module: "_index", "__init__" (the
    package's), "_formats" (a subpackage's __init__), "_formats.index", ..."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        out[".".join(parts)] = path
    return out


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
    private = [m for m in all_modules() if m.startswith("_") and not m.startswith("__")]
    assert "_formats.index" in private   # the subpackage was read
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
    """{module: the package modules it imports}, function-level imports included (dotted
    names as ``all_modules``); ``from .x import name`` imports the module ``x.name`` if there
    is one, and ``x`` (a module, or a package's __init__) itself."""
    modules = all_modules()

    def resolve(parts: list[str], names) -> set[str]:
        target = ".".join(parts) or "__init__"
        found = {f"{target}.{n}" if parts else n for n in names}
        return ({target} if target in modules else set()) | (found & set(modules))

    graph = {}
    for name, path in modules.items():
        package = name.split(".")[:-1] if path.name != "__init__.py" else (
            [] if name == "__init__" else name.split("."))
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)]
                deps |= resolve(base + (node.module.split(".") if node.module else []),
                                [a.name for a in node.names])
            elif isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "biohash_index":
                deps |= resolve(node.module.split(".")[1:], [a.name for a in node.names])
            elif isinstance(node, ast.Import):
                deps |= {".".join(a.name.split(".")[1:]) or "__init__"
                         for a in node.names if a.name.split(".")[0] == "biohash_index"}
        graph[name] = deps - {name}
    return graph


def test_imports_within_the_package_form_no_cycle():
    graph = package_imports()
    assert graph["_version"] == set() and "_index" in graph["__init__"]   # the graph was read
    assert "_formats.index" in graph["_index"] and "_formats._io" in graph["_formats.index"]
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
