"The README does what it says: its Quick start runs as written, its commands are right, and it is the text of nbs/index.ipynb."
import difflib, importlib.util, json, os, re, shutil, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT/'README.md').read_text()
INDEX, DEMO = ROOT/'nbs'/'index.ipynb', ROOT/'nbs'/'10_demo.ipynb'
RESULTS = ROOT/'bench'/'results.md'
# the README's benchmark figures: bench/run_all.py writes them here, in README.md and nbs/index.ipynb, from bench/results.md
BENCH = re.compile(r'<!-- bench:start -->\n(.*?)\n<!-- bench:end -->', re.S)


def cells(path): return json.loads(Path(path).read_text())['cells']
def source(cell): return ''.join(cell['source'])


def quick_start(text: str) -> str:
    "The python block right under the README's `## Quick start`."
    m = re.search(r'^## Quick start\n\n```python\n(.*?)\n```$', text, re.S | re.M)
    assert m, "README.md has no ```python block right under '## Quick start'"
    return m.group(1)


def as_readme(path) -> str:
    "A notebook as README text: markdown cells as they are, code cells not hidden as python blocks."
    parts = []
    for c in cells(path):
        s = source(c)
        if c['cell_type'] == 'markdown': parts.append(s)
        elif not s.startswith('#| hide'): parts.append(f'```python\n{s}\n```')
    return '\n\n'.join(parts) + '\n'


def test_quick_start_runs_as_written(capsys):
    ns = {}
    exec(compile(quick_start(README), 'README.md (Quick start)', 'exec'), ns)
    run, data = ns['run'], ns['data']
    assert not run.avg_stats.enabled
    assert run.live_plot.history.n_iter == 5 * len(data.train_dl)  # both fits, on one axis
    assert capsys.readouterr().out.count('valid: [') == 3  # the first fit's 3 epochs print; the second fit's do not


def test_index_has_the_same_quick_start():
    nb = cells(INDEX)
    i = next(i for i, c in enumerate(nb) if c['cell_type'] == 'markdown' and source(c).startswith('## Quick start'))
    assert source(nb[i + 1]) == quick_start(README)


def test_index_is_the_readme():
    want, got = README, as_readme(INDEX)
    diff = ''.join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), 'README.md', 'nbs/index.ipynb'))
    assert not diff, f"README.md and nbs/index.ipynb differ; edit both:\n{diff}"


def test_read_more_names_every_notebook():
    "The README points to the chapters by name: every notebook of nbs/, and none that is not there."
    m = re.search(r'^## Read more\n(.*?)(?=^## |\Z)', README, re.S | re.M)
    assert m, "README.md has no '## Read more' section"
    named = set(re.findall(r'`(\d\d\w*)`', m.group(1)))
    assert named == {p.stem for p in (ROOT/'nbs').glob('*.ipynb')} - {'index'}


def run_all():
    "bench/run_all.py as a module."
    spec = importlib.util.spec_from_file_location('run_all', ROOT/'bench'/'run_all.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_figures_are_those_of_bench_results():
    "The README's benchmark figures are rendered from bench/results.md, their one source, and copy its numbers."
    block, results = BENCH.search(README).group(1), RESULTS.read_text()
    assert block == run_all().readme_block(results), "README.md's figures differ from bench/results.md's: run `python bench/run_all.py --render-readme`"
    numbers = re.findall(r'[-+]?\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+', block)
    assert len(numbers) >= 6 and all(n in results for n in numbers), [n for n in numbers if n not in results]


def test_render_readme_writes_both_readme_and_index(tmp_path):
    "`run_all.py --render-readme` on a changed results.md: README.md and nbs/index.ipynb show the new figures and still agree."
    (tmp_path/'bench').mkdir(); (tmp_path/'nbs').mkdir()
    (tmp_path/'README.md').write_text(README)
    (tmp_path/'nbs'/'index.ipynb').write_text(INDEX.read_text())
    results = RESULTS.read_text()
    ratio = re.search(r'^\| \(c\) (?:[^|]*\|){4} ([\d.]+) \|', results, re.M).group(1)   # (c)'s ratio to (a), the first workload's
    changed = results.replace(f'| {ratio} |', '| 1.999 |', 1)
    (tmp_path/'bench'/'results.md').write_text(changed)
    module = run_all()
    module.HERE = tmp_path/'bench'
    module.main(['--render-readme'])
    readme = (tmp_path/'README.md').read_text()
    assert '1.999×' in BENCH.search(readme).group(1) and f'{ratio}×' not in readme
    assert readme == as_readme(tmp_path/'nbs'/'index.ipynb')
    assert readme.replace('1.999×', f'{ratio}×') == README


def _fake(path: Path, body: str):
    path.write_text(f'#!/bin/sh\n{body}\n')
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')
@pytest.mark.parametrize('uid, root_flag', [('0', ['--allow-root']), ('1000', [])])
def test_lab_sh_adds_allow_root_only_as_root(tmp_path, uid, root_flag):
    "scripts/lab.sh, with `id -u` and the venv's `jupyter` faked: the command it would run."
    (tmp_path/'bin').mkdir(); (tmp_path/'venv'/'bin').mkdir(parents=True)
    _fake(tmp_path/'bin'/'id', f'echo {uid}')
    _fake(tmp_path/'venv'/'bin'/'jupyter', 'printf "%s\\n" "$@"')
    env = {**os.environ, 'PATH': f"{tmp_path/'bin'}:{os.environ['PATH']}", 'VENV': str(tmp_path/'venv')}
    def lab(*args):
        return subprocess.run(['bash', str(ROOT/'scripts'/'lab.sh'), *args], env=env, capture_output=True,
                              text=True, check=True).stdout.split()
    assert lab() == ['lab', *root_flag, 'nbs/10_demo.ipynb']
    assert lab('nbs/08_liveplot.ipynb', '--no-browser') == ['lab', *root_flag, 'nbs/08_liveplot.ipynb', '--no-browser']


def test_demo_notebook_has_the_long_fit_the_readme_names():
    m = re.search(r'"A fit long enough to watch", `(run\.fit\(\d+, learn\))`', README.replace('\n', ' '))
    assert m, "the README names the demo notebook's long fit"
    nb = cells(DEMO)
    assert any(c['cell_type'] == 'markdown' and source(c).startswith('## A fit long enough to watch') for c in nb)
    # nbdev_test skips cells flagged with settings.ini's tst_flags, so CI does not wait for this fit
    assert any(source(c) == f'#| notest\n{m.group(1)}' for c in nb if c['cell_type'] == 'code')
    assert 'notest' in re.search(r'^tst_flags\s*=(.*)$', (ROOT/'settings.ini').read_text(), re.M).group(1).split()


@pytest.mark.skipif(not (ROOT/'.git').exists() or shutil.which('git') is None, reason='needs a git checkout')
def test_readme_commands_leave_the_checkout_clean():
    "What `bash scripts/demo.sh` and the torchrun example write is ignored by git."
    for path in ('demo_output/live_plot.html', 'demo_output/history.csv', 'ddp_output/history.csv'):
        assert subprocess.run(['git', 'check-ignore', '-q', path], cwd=ROOT).returncode == 0, path
