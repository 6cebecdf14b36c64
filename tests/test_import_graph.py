"""scripts/import_graph.py on made-up packages: back edges and cycles are caught, aliases are exempt."""

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "import_graph.py"


@pytest.fixture(scope="module")
def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("import_graph", None)


def make_package(root: Path, files: dict[str, str]) -> Path:
    """A package ``fakepkg`` with the given modules; every folder gets an ``__init__.py``."""
    package = root / "fakepkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents]:
            if parent == root:
                break
            (parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
    return package


CLEAN = {
    "core/errors.py": "class Error(Exception):\n    pass\n",
    "data/io.py": "from fakepkg.core.errors import Error\n",
    "models/encoder.py": "import fakepkg.data.io\n",
    "pipeline.py": "from fakepkg.models import encoder\n",
    "training/loop.py": "from fakepkg.evaluation.metrics import score\n",
    "evaluation/metrics.py": "def score():\n    from fakepkg.pipeline import x\n",
    "commands/train.py": "from fakepkg.training import loop\n",
    "cli.py": "from fakepkg.commands import train\n",
}


def run(import_graph, package, capsys, **kwargs):
    status = import_graph.check(package, quiet=True, allowed_edges=set(), allowed_cycles=set(), **kwargs)
    return status, capsys.readouterr().out


def test_a_package_in_layer_order_passes_and_in_function_imports_are_edges(import_graph, tmp_path, capsys):
    package = make_package(tmp_path, CLEAN)
    status, out = run(import_graph, package, capsys)
    assert status == 0, out
    assert "import graph: OK" in out
    graph = import_graph.build_graph(package)
    edges = {(e.src, e.dst, e.in_function) for e in graph.edges}
    assert ("fakepkg.evaluation.metrics", "fakepkg.pipeline", True) in edges
    assert ("fakepkg.models.encoder", "fakepkg.data.io", False) in edges
    assert ("fakepkg.pipeline", "fakepkg.models.encoder", False) in edges  # `from pkg.models import encoder`


def test_a_back_edge_inside_a_function_fails(import_graph, tmp_path, capsys):
    package = make_package(tmp_path, {**CLEAN, "core/errors.py": "def f():\n    from fakepkg.models import encoder\n"})
    status, out = run(import_graph, package, capsys)
    assert status == 1
    assert "fakepkg.core.errors -> fakepkg.models.encoder (in a function): runs back up" in out


def test_evaluation_importing_training_fails(import_graph, tmp_path, capsys):
    files = {**CLEAN, "evaluation/metrics.py": "import fakepkg.training.loop\n",
             "training/loop.py": "x = 1\n"}
    status, out = run(import_graph, make_package(tmp_path, files), capsys)
    assert status == 1
    assert "evaluation imports training" in out


def test_a_cycle_within_one_layer_fails(import_graph, tmp_path, capsys):
    files = {**CLEAN, "data/a.py": "from fakepkg.data import b\n", "data/b.py": "def f():\n    import fakepkg.data.a\n"}
    status, out = run(import_graph, make_package(tmp_path, files), capsys)
    assert status == 1
    assert "cycle: fakepkg.data.a <-> fakepkg.data.b" in out


def test_the_allow_list_lets_a_listed_violation_pass_and_reports_stale_entries(import_graph, tmp_path, capsys):
    files = {**CLEAN, "data/a.py": "from fakepkg.data import b\n", "data/b.py": "import fakepkg.data.a\n"}
    package = make_package(tmp_path, files)
    status = import_graph.check(package, quiet=True, allowed_edges={("fakepkg.x", "fakepkg.y")},
                                allowed_cycles={("fakepkg.data.a", "fakepkg.data.b")})
    out = capsys.readouterr().out
    assert status == 0
    assert "allowed for now" in out and "stale allow-list entry, delete it: fakepkg.x -> fakepkg.y" in out


def test_alias_modules_are_exempt_but_a_module_without_a_layer_is_not(import_graph, tmp_path, capsys):
    alias = '''\
        """Deprecated alias."""
        import importlib
        import sys
        import warnings

        warnings.warn("moved", DeprecationWarning, stacklevel=2)
        sys.modules[__name__] = importlib.import_module("fakepkg.cli")
        '''
    status, _ = run(import_graph, make_package(tmp_path / "a", {**CLEAN, "core/old.py": alias}), capsys)
    assert status == 0
    status, out = run(import_graph, make_package(tmp_path / "b", {**CLEAN, "misc.py": "x = 1\n"}), capsys)
    assert status == 2
    assert "module fakepkg.misc has no layer" in out


def test_the_package_follows_the_layer_order(import_graph, capsys):
    status = import_graph.check(SCRIPT.parent.parent / "src" / "dreamdiffusion", quiet=True)
    out = capsys.readouterr().out
    assert status == 0, out
