"How the code reads (issue 25, STYLE.md): notebook cells the size of a thought, and modules that reach each other only by public names."
import ast, json, statistics
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT/'nbs').glob('*.ipynb'))
MODULES = sorted(p for p in (ROOT/'callbacks_widget').glob('*.py') if p.name != '_modidx.py')   # _modidx.py is generated
MAX_AVERAGE, MAX_CELL = 600, 2500


def export_cells(nb: Path) -> list:
    "The `(notebook, cell id, characters)` of each exported code cell of `nb` (as /work/cellsizes.py counts them)."
    cells = json.loads(nb.read_text())['cells']
    return [(nb.name, c.get('id'), len(''.join(c['source']))) for c in cells
            if c['cell_type'] == 'code' and ''.join(c['source']).lstrip().startswith('#| export')]


CELLS = [c for nb in NOTEBOOKS for c in export_cells(nb)]


def test_export_cells_average_under_600_characters():
    per_nb = {}
    for nb, _, n in CELLS: per_nb.setdefault(nb, []).append(n)
    above = ', '.join(f"{nb} {statistics.mean(ns):.0f}" for nb, ns in per_nb.items() if statistics.mean(ns) >= MAX_AVERAGE)
    average = statistics.mean(n for *_, n in CELLS)
    assert average < MAX_AVERAGE, f"exported cells average {average:.0f} characters across nbs/ (at most {MAX_AVERAGE}); above it: {above}"


def test_no_export_cell_over_2500_characters():
    big = [f"{nb} cell {cid}: {n}" for nb, cid, n in CELLS if n > MAX_CELL]
    assert not big, f"exported cells over {MAX_CELL} characters: {'; '.join(big)}"


def is_private(name: str) -> bool: return name.startswith('_') and not name.startswith('__')


def package_module(node: ast.ImportFrom) -> bool:
    "Whether `node` imports from this package (`from .x import`, `from callbacks_widget.x import`)."
    return node.level > 0 or (node.module or '').split('.')[0] == 'callbacks_widget'


def crossings(tree: ast.AST) -> list:
    "Private names this module takes from another module of the package, and its `sys.modules` look-ups, as `(line, what)`."
    found, modules = [], set()   # modules: local names bound to a module of the package
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and package_module(node):
            found += [(node.lineno, f"imports the private {a.name} from {'.' * node.level}{node.module or ''}")
                      for a in node.names if is_private(a.name)]
            modules |= {a.asname or a.name for a in node.names if node.module is None}   # from . import x
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.asname and a.name.startswith('callbacks_widget.')}
        if isinstance(node, ast.ImportFrom) and node.module == 'sys' and any(a.name == 'modules' for a in node.names):
            found.append((node.lineno, 'imports sys.modules'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == 'sys' and node.attr == 'modules': found.append((node.lineno, 'looks up sys.modules'))
            elif node.value.id in modules and is_private(node.attr):
                found.append((node.lineno, f"uses the private {node.value.id}.{node.attr}"))
    return sorted(found)


def test_the_check_finds_what_it_looks_for():
    src = ("import sys\nfrom .panel import CallbackPanel, _take\nfrom callbacks_widget.core import _x\n"
           "from . import runner as r\nr._fit_switches\nm = sys.modules.get('callbacks_widget.liveplot')\n"
           "from .core import patch, __version__\nfrom torch import _C\n")
    assert [what for _, what in crossings(ast.parse(src))] == [
        'imports the private _take from .panel', 'imports the private _x from callbacks_widget.core',
        'uses the private r._fit_switches', 'looks up sys.modules']


@pytest.mark.parametrize('path', MODULES, ids=lambda p: p.name)
def test_modules_reach_each_other_only_by_public_names(path):
    found = crossings(ast.parse(path.read_text(), str(path)))
    assert not found, f"{path.name}: " + '; '.join(f"line {n} {what}" for n, what in found)
