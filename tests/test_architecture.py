"""The shape of the code, checked with the standard library's `ast`: the layering the README's "How it
is built" describes, no import cycle (lazy imports inside functions count too), all SQL inside the
store package, one module importing durable_rules, small modules, and `bots` using only public names.

These are the promises a newcomer relies on when they read the folder tree; a change that breaks one
fails here with the module and line to look at.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: a package may import only from packages before it in this list.
LAYERS = ["core", "rules", "runtime", "intake", "store", "nurture", "pipeline", "desk", "delivery",
          "learning", "reports", "service", "demo", "cli"]
MAX_LINES = 400
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK|SAVEPOINT"
                 r"|RELEASE|VACUUM|WITH)\s+[A-Za-z_*(]")


@dataclass(frozen=True)
class Import:
    """One `import`/`from ... import` statement, resolved to absolute module names."""

    source: str  # the importing module, e.g. "engine.store._sqlite"
    line: int
    module: str  # the module imported from, e.g. "engine.store"
    names: tuple[str, ...]  # the names taken from it ("" for a plain `import x`)


def module_name(path: Path) -> str:
    """The installed name: engine/ is `leadflow`, bots/ is `leadflow.bots` (see pyproject.toml)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts = (["leadflow"] if parts[0] == "engine" else ["leadflow", "bots"]) + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return sorted(p for top in ("engine", "bots") for p in (ROOT / top).rglob("*.py"))


def imports_of(path: Path) -> list[Import]:
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [Import(me, node.lineno, alias.name, ("",)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(Import(me, node.lineno, target, tuple(a.name for a in node.names)))
    return found


def ours(module: str) -> bool:
    return module.split(".")[0] == "leadflow"


def in_bots(module: str) -> bool:
    return module == "leadflow.bots" or module.startswith("leadflow.bots.")


def all_imports() -> list[Import]:
    return [imp for path in source_files() for imp in imports_of(path)]


def existing_modules() -> set[str]:
    return {module_name(p) for p in source_files()}


def edges() -> dict[str, set[str]]:
    """Module -> modules it needs loaded. `from pkg import sub` needs `pkg.sub` when that is a module."""
    known = existing_modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for imp in all_imports():
        if not ours(imp.module):
            continue
        graph[imp.source].add(imp.module)
        for name in imp.names:
            if f"{imp.module}.{name}" in known:
                graph[imp.source].add(f"{imp.module}.{name}")
    # importing a module first imports every package above it
    for m in known:
        parent = m.rpartition(".")[0]
        if parent in known and parent != m:
            graph[m].add(parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Iterative depth-first search; returns one cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child) and child in graph:
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def package_of(module: str) -> str | None:
    """The engine package a module belongs to (`store` for leadflow.store._leads); None for bots, the
    top-level `leadflow` modules and anything not ours."""
    parts = module.split(".")
    if parts[0] != "leadflow" or len(parts) < 2 or in_bots(module) or parts[1] not in LAYERS:
        return None
    return parts[1]


def test_there_is_no_import_cycle_between_modules():
    graph = edges()
    # a package's __init__ importing its own private modules is not a cycle of meaning: the
    # module importing its parent package is implied by Python, not written by anyone
    written = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert find_cycle(written) is None, " -> ".join(find_cycle(written) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_layer_list_names_every_package_of_the_engine():
    packages = {p.name for p in (ROOT / "engine").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_packages_import_only_from_packages_below_them():
    wrong = []
    for imp in all_imports():
        mine, theirs = package_of(imp.source), package_of(imp.module)
        if in_bots(imp.module) and not in_bots(imp.source):
            wrong.append(f"{imp.source}:{imp.line}: the engine imports {imp.module}")
        if mine and theirs and mine != theirs and LAYERS.index(theirs) > LAYERS.index(mine):
            wrong.append(f"{imp.source}:{imp.line}: {mine} (layer {LAYERS.index(mine)}) imports {imp.module} "
                         f"(layer {LAYERS.index(theirs)})")
    assert not wrong, "\n".join(wrong)


def public_names(package: str) -> set[str]:
    tree = ast.parse((ROOT / "engine" / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def test_across_packages_only_public_names_are_imported():
    """Inside a package anything goes; from outside (another engine package or bots) only the
    package itself and the names in its `__all__`."""
    wrong = []
    for imp in all_imports():
        theirs = package_of(imp.module)
        if not theirs or package_of(imp.source) == theirs:
            continue
        if imp.module != f"leadflow.{theirs}":
            wrong.append(f"{imp.source}:{imp.line}: imports the private module {imp.module}")
            continue
        hidden = [n for n in imp.names if n not in public_names(theirs)]
        if hidden:
            wrong.append(f"{imp.source}:{imp.line}: {', '.join(hidden)} not in leadflow.{theirs}.__all__")
    assert not wrong, "\n".join(wrong)


def test_every_public_name_exists():
    for package in LAYERS:
        module = __import__(f"leadflow.{package}", fromlist=["__all__"])
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"leadflow.{package}.__all__ names {missing}"


def test_modules_inside_packages_are_private():
    public = [str(p.relative_to(ROOT)) for p in (ROOT / "engine").glob("*/*.py")
              if not p.name.startswith("_")]
    assert not public


def string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_sql_lives_only_in_the_store_package():
    wrong = []
    for path in source_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("engine/store/"):
            continue
        wrong += [f"{rel}:{line}: {text[:60]!r}" for line, text in string_constants(path) if SQL.match(text)]
        wrong += [f"{rel}:{imp.line}: imports {imp.module}" for imp in imports_of(path)
                  if imp.module.split(".")[0] in ("sqlite3", "sqlite_utils")]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        wrong += [f"{rel}:{n.lineno}: uses the store's connection ({n.attr})" for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and n.attr in ("conn", "execute", "executemany")]
    assert not wrong, "\n".join(wrong)


def test_the_sql_detector_sees_sql():
    assert SQL.match("SELECT count(*) FROM leads")
    assert SQL.match("  INSERT INTO timers (lead) VALUES (?)")
    assert not SQL.match("Select a rep for the lead")
    assert not SQL.match("UPDATE")


def test_one_module_imports_durable_rules():
    importers = {imp.source for imp in all_imports() if imp.module.split(".")[0] == "durable"}
    assert importers == {"leadflow.runtime._durable"}


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_modules_stay_small(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{lines} lines"


def test_the_readme_picture_names_the_packages_that_exist():
    """The README's "How it is built" names each engine package as `engine/<name>/`; both ways."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"engine/([a-z_]+)/", section))
    assert named == set(LAYERS)


def test_the_installed_package_lists_every_package_under_the_leadflow_name():
    """A non-editable install ships exactly the packages pyproject.toml lists; one it missed would
    only fail on a user's machine, and a generic top-level name would collide with other projects."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    on_disk = {module_name(p.parent) for top in ("engine", "bots") for p in (ROOT / top).rglob("__init__.py")}
    assert set(config["packages"]) == on_disk | {"leadflow.bundled_rules"}
    assert config["package-dir"] == {"leadflow": "engine", "leadflow.bots": "bots", "leadflow.bundled_rules": "rules"}
