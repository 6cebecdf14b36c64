#!/usr/bin/env python
"""Print the import graph between a package's modules and check it against the layer order.

    python scripts/import_graph.py                     # src/dreamdiffusion: the graph, then the verdict
    python scripts/import_graph.py --quiet             # only the verdict
    python scripts/import_graph.py --package-dir DIR   # any package laid out the same way (the tests use one)

The order (CONTRIBUTING.md), each layer importing only from itself and the layers before it:

    core -> data -> models -> pipeline -> generation -> training / evaluation -> experiments / app -> commands -> cli

plus: evaluation never imports training, and nothing outside training, experiments and commands imports
training. Every import counts, at module top or inside a function (those run too, only later), and so does
``importlib.import_module("<package>.x")`` with a literal name. The exit status is 1 on an edge that runs back up
the order or on a cycle (two modules that import each other, directly or through others), 2 on a module that
has no layer (a new top-level module must be given one in LAYERS) or a file that does not parse.

Exempt: alias modules that only re-export a moved module (a ``DeprecationWarning`` plus the re-export: they sit
at old paths, outside the order, for one release), and the package's own ``__init__`` (the public facade,
``from dreamdiffusion import DreamDiffusionPipeline``), which may import any layer but must not be imported by one.

Read by AST only: nothing of the package is imported, so this runs in a second without torch.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

# The layer order: a module may import modules of its own rank or lower. Keys are the first name under the
# package (a subpackage or a top-level module).
LAYERS: dict[str, int] = {
    "core": 0,
    "data": 1,
    "models": 2,
    "pipeline": 3,
    "generation": 4,
    "conditioning": 4,  # the route a model folder takes (generation builds its pipeline through it)
    "steering": 4,  # best-of-N and CLIP guidance toward the EEG's prediction (generation.draw_images calls it)
    "training": 5,
    "evaluation": 5,
    "experiments": 6,
    "app": 6,
    "commands": 7,
    "cli": 8,
    "__main__": 8,
}
# Who may import training at all (rule 1 of CONTRIBUTING.md): training itself, experiments, commands.
MAY_IMPORT_TRAINING = {"training", "experiments", "commands"}

# TEMPORARY (issue 13): violations on main while the remaining moves land. Each entry is an edge (importer,
# imported) or a cycle (its modules, sorted). Listed ones are reported but do not fail; an entry that no longer
# occurs is reported as stale so the list only shrinks. This list must end EMPTY: delete an entry in the commit
# that removes its violation, never add one.
ALLOWED_EDGES: set[tuple[str, str]] = set()
ALLOWED_CYCLES: set[tuple[str, ...]] = set()

_ALIAS_STDLIB = {"importlib", "sys", "warnings"}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    in_function: bool


def module_name(package_dir: Path, path: Path) -> str:
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package_dir.name, *parts])


def find_modules(package_dir: Path) -> dict[str, Path]:
    return {module_name(package_dir, p): p for p in sorted(package_dir.rglob("*.py"))
            if "__pycache__" not in p.parts}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of the package's modules."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """``from ..x import y`` inside ``module`` -> the absolute dotted name."""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: dict[str, Path]):
        self.module, self.is_package, self.modules = module, is_package, modules
        self.package = module.split(".")[0]
        self.depth = 0
        self.edges: list[Edge] = []

    def _add(self, name: str, line: int) -> None:
        if name.split(".")[0] != self.package:
            return
        dst = _resolve(name, self.modules)
        if dst is not None and dst != self.module:
            self.edges.append(Edge(self.module, dst, line, self.depth > 0))

    def _function(self, node) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _absolute(self.module, self.is_package, node.level, node.module) if node.level else node.module
        if base is None:
            return
        for alias in node.names:  # `from pkg.data import pairs` names the module pkg.data.pairs
            self._add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.modules else base, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._add(node.args[0].value, node.lineno)
        self.generic_visit(node)


def _is_deprecation_warning(stmt: ast.stmt) -> bool:
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    call = stmt.value
    return (isinstance(call.func, ast.Attribute) and call.func.attr == "warn"
            and any(isinstance(a, ast.Name) and a.id == "DeprecationWarning"
                    for a in [*call.args, *(k.value for k in call.keywords)]))


def is_alias(tree: ast.Module, package: str) -> bool:
    """An alias only warns that it moved and re-exports the new home: docstring, the imports this needs, one
    ``DeprecationWarning``, and either ``sys.modules[__name__] = import_module(...)`` or ``from <new> import``."""
    warned, reexports = False, False
    for i, stmt in enumerate(tree.body):
        if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.Import) and all(a.name in _ALIAS_STDLIB for a in stmt.names):
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue
        if isinstance(stmt, ast.ImportFrom) and (stmt.level or (stmt.module or "").split(".")[0] == package):
            reexports = True
            continue
        if _is_deprecation_warning(stmt):
            warned = True
            continue
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "sys.modules":
                reexports = True
                continue
            if isinstance(target, ast.Name) and target.id == "__all__":
                continue
        return False
    return warned and reexports


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@dataclass
class Graph:
    modules: dict[str, Path]
    edges: list[Edge]
    aliases: set[str]
    problems: list[str]  # unparsable files, modules without a layer


def build_graph(package_dir: Path) -> Graph:
    modules = find_modules(package_dir)
    package = package_dir.name
    edges, aliases, problems = [], set(), []
    for module, path in modules.items():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: does not parse: {exc}")
            continue
        if is_alias(tree, package):
            aliases.add(module)
            continue
        collector = _Collector(module, path.name == "__init__.py", modules)
        collector.visit(tree)
        edges.extend(collector.edges)
        layer = layer_of(module)
        if layer is not None and layer not in LAYERS:
            problems.append(f"{path}: module {module} has no layer: add {layer!r} to LAYERS in {Path(__file__).name}")
    return Graph(modules, edges, aliases, problems)


def edge_violation(edge: Edge, package: str) -> str | None:
    """Why an edge breaks the order, or None."""
    src, dst = layer_of(edge.src), layer_of(edge.dst)
    if src is None:  # the package's __init__: the facade may import anything
        return None
    if dst is None:
        return f"imports the package facade {package!r} (import the module that holds the name)"
    if src not in LAYERS or dst not in LAYERS:
        return None  # reported once as a module without a layer
    if dst == "training" and src not in MAY_IMPORT_TRAINING:
        return f"{src} imports training (only training, experiments and commands may)"
    if LAYERS[dst] > LAYERS[src]:
        return f"runs back up: {src} (layer {LAYERS[src]}) imports {dst} (layer {LAYERS[dst]})"
    return None


def find_cycles(modules: list[str], edges: list[Edge]) -> list[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(tuple(sorted(component)))
    return sorted(cycles)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_graph(graph: Graph) -> None:
    by_src: dict[str, list[Edge]] = {}
    for e in graph.edges:
        by_src.setdefault(e.src, []).append(e)
    for module in sorted(graph.modules):
        if module in graph.aliases:
            print(f"{module}  (alias, exempt)")
            continue
        print(module)
        seen = set()
        for e in sorted(by_src.get(module, []), key=lambda e: (e.dst, e.in_function)):
            if e.dst in seen:
                continue
            seen.add(e.dst)
            where = "in function" if all(x.in_function for x in by_src[module] if x.dst == e.dst) else "top"
            print(f"    -> {e.dst}  ({where}, line {e.line})")


def check(package_dir: Path, quiet: bool = False, allowed_edges=None, allowed_cycles=None) -> int:
    allowed_edges = ALLOWED_EDGES if allowed_edges is None else allowed_edges
    allowed_cycles = ALLOWED_CYCLES if allowed_cycles is None else allowed_cycles
    graph = build_graph(package_dir)
    if not quiet:
        print_graph(graph)
        print()
    package = package_dir.name
    failures, allowed = [], []
    seen_edges = set()
    for e in sorted(graph.edges, key=lambda e: (e.src, e.dst, e.line)):
        why = edge_violation(e, package)
        if why is None or (e.src, e.dst) in seen_edges:
            continue
        seen_edges.add((e.src, e.dst))
        where = "in a function" if e.in_function else "at module top"
        line = f"{_shown(graph.modules[e.src])}:{e.line}: {e.src} -> {e.dst} ({where}): {why}"
        (allowed if (e.src, e.dst) in allowed_edges else failures).append(line)
    cycles = find_cycles([m for m in graph.modules if m not in graph.aliases], graph.edges)
    for cycle in cycles:
        line = "cycle: " + " <-> ".join(cycle)
        (allowed if cycle in allowed_cycles else failures).append(line)
    stale = sorted(f"{a} -> {b}" for a, b in allowed_edges - seen_edges) + sorted(
        "cycle: " + " <-> ".join(c) for c in set(allowed_cycles) - set(cycles))
    n_top = sum(not e.in_function for e in graph.edges)
    print(f"{len(graph.modules)} modules ({len(graph.aliases)} aliases), {len(graph.edges)} import edges "
          f"({n_top} at module top, {len(graph.edges) - n_top} inside functions)")
    for line in allowed:
        print(f"allowed for now (temporary list in {Path(__file__).name}): {line}")
    for line in stale:
        print(f"stale allow-list entry, delete it: {line}")
    for line in graph.problems:
        print(f"error: {line}")
    for line in failures:
        print(f"error: {line}")
    if graph.problems:
        return 2
    if failures:
        return 1
    extra = f", {len(allowed)} temporary exception(s) listed above" if allowed else ""
    print(f"import graph: OK (every edge follows the layer order, no cycle{extra})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package-dir", type=Path,
                        default=Path(__file__).resolve().parent.parent / "src" / "dreamdiffusion")
    parser.add_argument("--quiet", action="store_true", help="only the verdict, not the whole graph")
    args = parser.parse_args(argv)
    if not (args.package_dir / "__init__.py").is_file():
        print(f"error: {args.package_dir}: not a package (no __init__.py)", file=sys.stderr)
        return 2
    return check(args.package_dir, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
