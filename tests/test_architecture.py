"""The one-of-each helpers: the data-directory resolver, the file-format guesser, no import cycles."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from goectp.data.paths import data_dir, find_data_dir
from goectp.io_formats import guess_format, normalize_format

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ data directory
def test_data_dir_takes_the_first_given_folder(tmp_path, monkeypatch):
    given, env = tmp_path / "given", tmp_path / "env"
    given.mkdir()
    env.mkdir()
    monkeypatch.setenv("GOECTP_DATA", str(env))
    assert data_dir(given) == given.resolve() and data_dir() == env.resolve() == find_data_dir()


def test_a_missing_data_dir_is_an_error_that_names_it(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("GOECTP_DATA", str(missing))
    with pytest.raises(FileNotFoundError, match=r"\$GOECTP_DATA .*nowhere does not exist"):
        data_dir()
    assert data_dir(must_exist=False) == missing  # for defaults shown in --help
    assert find_data_dir() is None  # optional data (the explorer): None, never a missing folder
    with pytest.raises(FileNotFoundError, match="given data directory"):
        data_dir(tmp_path / "also-missing")


def test_every_component_uses_the_one_resolver(tmp_path, monkeypatch):
    from explorer.paths import data_dir as explorer_data_dir
    from goectp.cli import screen as cli

    monkeypatch.setenv("GOECTP_DATA", str(tmp_path / "missing"))
    assert explorer_data_dir() is None
    assert Path(cli.build_parser().parse_args([]).pool).parent == tmp_path / "missing"
    monkeypatch.setenv("GOECTP_DATA", str(tmp_path))
    assert explorer_data_dir() == tmp_path.resolve()
    defs = [
        f"{p.relative_to(ROOT)}"
        for pkg in ("goectp", "explorer")
        for p in (ROOT / pkg).rglob("*.py")
        if "def data_dir(" in p.read_text()
    ]
    assert len(defs) == 2, defs  # goectp.data.paths and explorer.paths' thin wrapper


# ------------------------------------------------------------------------------------------------ file formats
@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.cif", "cif"),
        ("A.MCIF", "cif"),
        ("x/POSCAR", "poscar"),
        ("CONTCAR_relaxed", "poscar"),
        ("x.vasp", "poscar"),
        ("t.extxyz", "extxyz"),
        ("t.xyz", "extxyz"),
        ("s.json", "json"),
        ("POSCAR_1.cif", "cif"),
        ("a.pdf", None),
        ("a.cif.gz", None),
        ("README", None),
    ],
)
def test_guess_format(name, fmt):
    assert guess_format(name) == fmt


def test_guess_format_of_compressed_files():
    assert guess_format("a.cif.gz", compressed=True) == "cif"
    assert guess_format(Path("d/POSCAR.gz"), compressed=True) == "poscar"
    assert guess_format("notes.txt.gz", compressed=True) is None


def test_normalize_format():
    assert [normalize_format(f) for f in (".VASP", "contcar", "xyz", "mcif", "cif", "cssr")] == [
        "poscar",
        "poscar",
        "extxyz",
        "cif",
        "cif",
        "cssr",
    ]


def test_the_format_guesser_is_the_same_everywhere():
    from explorer import loader
    from goectp.io_formats import guess_format as one
    from goectp.screening.pool import structure_format

    assert loader.guess_format is one
    assert structure_format(Path("sub/NaCl.cif.gz")) == "cif" and structure_format(Path("notes.md")) is None


# ------------------------------------------------------------------------------------------------ import cycles
def _import_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module → project modules it imports (function-level imports included)."""
    mods = {}
    for pkg in packages:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m:
                    edges[m].add(t)
    return edges


def test_no_import_cycles():
    edges = _import_graph(("goectp", "explorer"))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n) :] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


# ------------------------------------------------------------------------------------------------ readers
#: ``(object, attribute)`` calls that decode untrusted bytes into Python objects, and the one module each may live
#: in: pymatgen's readers hand dict keys to monty (which imports what they name), pickle and torch.load run code.
GUARDED_CALLS = {
    ("Structure", "from_dict"): "goectp/structures.py",
    ("Structure", "from_file"): "goectp/structures.py",
    ("Structure", "from_str"): "goectp/structures.py",
    ("torch", "load"): "goectp/torch_files.py",
    ("pickle", "load"): None,
    ("pickle", "loads"): None,
    ("pd", "read_pickle"): None,
}
#: names that must not be used at all outside their module (monty's decoders import what a file names)
GUARDED_NAMES = {"MontyDecoder": None, "loadfn": None, "Unpickler": "goectp/data/safe_pickle.py"}


def test_untrusted_bytes_are_decoded_in_one_place_each():
    offenders = []
    for folder in ("goectp", "explorer", "benchmarks"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    key = (node.value.id, node.attr)
                    if key in GUARDED_CALLS and GUARDED_CALLS[key] != rel:
                        offenders.append(f"{rel}:{node.lineno} {node.value.id}.{node.attr}")
                name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
                if isinstance(node, ast.alias):
                    name = node.name.rpartition(".")[2]
                if name in GUARDED_NAMES and GUARDED_NAMES[name] != rel:
                    offenders.append(f"{rel}:{getattr(node, 'lineno', '?')} {name}")
    assert not offenders, "use goectp.structures, goectp.torch_files, goectp.data.safe_pickle: " + ", ".join(offenders)


# ------------------------------------------------------------------------------------------------ logging
#: The package whose job is user-facing output (the command lines, one module per command); everything else logs.
CLI_PACKAGE = "goectp/cli/"


def test_library_modules_log_instead_of_printing():
    offenders = []
    for p in sorted((ROOT / "goectp").rglob("*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith(CLI_PACKAGE):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def test_training_progress_goes_to_the_log(tmp_path, caplog, capsys):
    import logging

    from pymatgen.core import Lattice, Structure

    from goectp.data import graphs_from_records, parse_dielectric_dict
    from goectp.models import GoeCTP, GoeCTPConfig
    from goectp.training import TrainConfig, train

    recs = {
        f"r{i}": {
            "structure": Structure(Lattice.cubic(4.0 + 0.1 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict(),
            "total": [[4.0 + i, 0, 0], [0, 4.0 + i, 0], [0, 0, 4.0 + i]],
        }
        for i in range(4)
    }
    graphs = graphs_from_records(parse_dielectric_dict(recs), progress=False).with_target("total")
    cfg = TrainConfig(epochs=1, batch_size=2, progress=False)
    with caplog.at_level(logging.INFO, logger="goectp"):
        train(GoeCTP(GoeCTPConfig(hidden=8, num_rbf=8)), graphs[:3], graphs[3:], cfg, tmp_path)
        train(GoeCTP(GoeCTPConfig(hidden=8, num_rbf=8)), graphs[:3], graphs[3:], cfg, tmp_path, resume=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "goectp.training.loop"]
    assert any(m.startswith("epoch 1/1 loss") for m in messages) and any("resumed from epoch 1" in m for m in messages)
    assert capsys.readouterr().out == ""


def test_setup_logging_shows_info_lines(monkeypatch):
    import logging

    from goectp.logs import setup_logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a fresh process: no handler yet
    monkeypatch.setattr(root, "level", logging.WARNING)
    setup_logging()
    assert len(root.handlers) == 1 and logging.getLogger("goectp").getEffectiveLevel() == logging.INFO
    record = logging.LogRecord("goectp.x", logging.INFO, __file__, 1, "epoch %d", (3,), None)
    assert root.handlers[0].format(record) == "epoch 3"
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    assert root.handlers[0].format(record) == "warning: epoch 3"
    setup_logging(debug=True)
    assert len(root.handlers) == 1 and logging.getLogger("goectp").level == logging.DEBUG
    logging.getLogger("goectp").setLevel(logging.NOTSET)


def test_the_dependencies_declared_are_the_ones_imported():
    """No shipped module imports HoloViews (the map is plain Bokeh since the room of thirty), and the package does
    not declare it: a dependency nothing imports is install time and size for nothing."""
    imported = set()
    for folder in ("goectp", "explorer"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module.split(".")[0])
    assert "holoviews" not in imported and "hvplot" not in imported
    assert "holoviews" not in (ROOT / "pyproject.toml").read_text()
    assert {"panel", "bokeh", "torch", "pymatgen"} <= imported  # the scan sees the imports it should
