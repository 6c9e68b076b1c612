"""Run the benchmarks, write bench/results.md and bench/overhead.png, and the README's headline figures from results.md.

    python bench/run_all.py [--quick] [--peers] [--no-instructions | --instructions-from JSON] [--reuse]
    python bench/run_all.py --render-readme    # only the README's figures, from bench/results.md as it is

With valgrind installed (and not --quick), also counts each contestant's instructions per epoch
(`bench/instructions.py`, about 20 minutes on 2 cores): a measure of the loop's own work that the VM's noise cannot touch.

Each benchmark runs in its own process (so one's memory does not disturb the other) and hands its
numbers back as JSON in bench/out/ (git-ignored).
"""
import argparse, datetime, json, os, platform, re, shutil, subprocess, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / 'out'
sys.path.insert(0, str(HERE))


def machine() -> dict:
    cpu = 'unknown'
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): cpu = line.split(':', 1)[1].strip(); break
    except OSError: pass
    import numpy, plotly, torch, ipywidgets
    try: load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    except OSError: load = '?'
    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                plotly=plotly.__version__, ipywidgets=ipywidgets.__version__, numpy=numpy.__version__,
                date=datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'), load=load)


def run(script: str, args: list, json_path: Path) -> dict:
    cmd = [sys.executable, str(HERE / script), *args, '--json', str(json_path)]
    print('$', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(json_path.read_text())


def plot(loop: dict, upd: dict, path: Path, ins: dict = None) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    label = lambda r: r['label'].split()[-2].replace('pytorch-', '') if r['label'].startswith('(peer)') else r['label'].split(' ', 1)[0]
    names = list(dict.fromkeys(label(r) for res in loop.values() for r in res['rows']))
    width = 0.8 / len(loop)
    tops, lows = [1.2], [0.8]
    for k, (name, res) in enumerate(loop.items()):
        rows = res['rows']
        xs = [names.index(label(r)) + (k - (len(loop) - 1) / 2) * width for r in rows]
        err = [[r['ratio'] - r.get('ratio_lo', r['ratio']) for r in rows], [r.get('ratio_hi', r['ratio']) - r['ratio'] for r in rows]]
        colour = ('#1f77b4', '#17becf')[k % 2]
        a1.bar(xs, [r['ratio'] for r in rows], width, yerr=err, capsize=2, color=['#7f7f7f'] + [colour] * (len(rows) - 1))
        a1.bar([0], [0], 0, color=colour, label=f"{name}: (a) {res['hand_us_per_batch']:.0f} µs/batch" if 'hand_us_per_batch' in res else name)
        tops.append(max(r.get('ratio_hi', r['ratio']) for r in rows if not r['label'].startswith('(peer)')) + 0.05)
        lows.append(min(r['ratio'] for r in rows) - 0.05)
        for x, r in zip(xs, rows): a1.text(x, min(r['ratio'], max(tops) - 0.04), f"{r['ratio']:.3f}", ha='center', va='bottom', fontsize=6, rotation=90)
    for x, t in ((names.index('(b)'), 1.05), (names.index('(c)'), 1.08)) if '(b)' in names and '(c)' in names else ():
        a1.hlines(t, x - 0.4, x + 0.4, colors='#d62728', linestyles='dashed')
    a1.set_xticks(range(len(names)), names)
    a1.set_ylim(min(lows), max(tops))   # a slow peer's bar is cut; its number is on it
    a1.axhline(1, color='k', lw=0.5)
    for k, (name, res) in enumerate(ins.items() if ins else ()):
        pts = [(names.index(label(r)) + (list(loop).index(name) - (len(loop) - 1) / 2) * width, r['ratio'])
               for r in res['rows'] if label(r) in names and name in loop]
        if pts: a1.plot(*zip(*pts), 'D', ms=4, color=('#ff7f0e', '#d62728')[k % 2], label=f'{name}: instructions / (a)')
    a1.legend(fontsize=7, loc='upper left')
    a1.set_ylabel('time / paced hand-written (median)')
    a1.set_title("Loop overhead per workload (bars: 90% interval; dashed: targets)", fontsize=10)
    ns = [r['n'] for r in upd['rows']]
    a2.plot(ns, [r['update_ms'] for r in upd['rows']], 'o-', label='update, ms (median)')
    a2.plot(ns, [r['bytes_max'] / 1e4 for r in upd['rows']], 's-', label='largest update, 10 KB')
    a2.axhline(2, color='#d62728', ls='--', lw=1, label='targets: 2 ms, 64 KB (6.4)')
    a2.axhline(6.4, color='#d62728', ls='--', lw=1)
    a2.set_xscale('log'); a2.set_ylim(0, 8); a2.set_xlabel('history length (batches)')
    a2.set_title('One live-plot update'); a2.legend(fontsize=8)
    fig.tight_layout(); fig.savefig(path, dpi=110)


def instructions_md(ins: dict, upd: dict) -> str:
    "The instruction counts of each workload, with the share of the live plot's mid-epoch redraws (at most update time / every)."
    if not ins: return ''
    import instructions
    from callbacks_widget.liveplot import LivePlotCallback
    every = LivePlotCallback().every
    worst = max(r['update_ms'] for r in upd['rows'])
    tables = '\n\n'.join(f"{name} workload, epochs of {res['batches_small']} and {res['batches']} batches:\n\n"
                          f"{instructions.table(res)}" for name, res in ins.items())
    return f"""
### Instructions per batch (free of timing noise)

Each workload counted by valgrind (`bench/instructions.py`, a process per contestant, address space layout
randomisation off, so that the same code gives the same count to the instruction): each contestant set up, a warm-up
epoch and `gc.freeze()`, then one epoch of n samples and one of 2n, each between two marks where callgrind writes
its counts. Per batch: the difference of the two epochs over their difference in batches, so what a
fit costs once (set-up, the epoch's printed stats and redraw) is not spread over its batches; per fit: the rest.
(c) redraws at epoch and fit ends here; its redraws within an epoch, one
every {every} s, add at most update time / every = {worst:.2f} ms / {every * 1e3:.0f} ms = {worst / (every * 1e3):.1%}
of the training time (the slowest median update below). (s) is counted against (as), the hand-written loop that sets
the same lr.

{tables}
"""


def loop_md(loop: dict) -> str:
    "Each workload's table and notes."
    import loop_overhead
    return '\n\n'.join(f"### {name}: {res['describe']}\n\n{loop_overhead.table(res)}\n\n{loop_overhead.notes(res)}"
                         for name, res in loop.items())


def results_md(m: dict, loop: dict, upd: dict, loop_tables: str, upd_table: str, upd_note: str,
               command: str, ins_md: str = '', st_md: str = '') -> str:
    return f"""# Benchmarks

Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']}, plotly {m['plotly']},
ipywidgets {m['ipywidgets']}, numpy {m['numpy']}; {m['date']}; load average at the end: {m['load']}.
Produced by `{command}`.

## Loop overhead per epoch

Two workloads on synthetic MNIST-shaped data, one torch thread: the lesson's (its step is long, and
hides the loop) and a short step as on a GPU; the hand-written loop is paced alongside every
contestant's epoch, batch by batch (`bench/loop_overhead.py`).

{loop_tables}
{ins_md}
## One live-plot update

`LivePlotCallback.update()` with the history filled to each length (`bench/plot_update.py`);
bytes are every widget message of the update (figure and panel), recorded with `record_messages`.

{upd_table}

{upd_note}
{st_md}
![overhead](overhead.png)
"""


def store_md(st: dict) -> str:
    "The run store's section of results.md, from `bench/store.py`'s results `st` (empty if it did not run)."
    if not st: return ''
    import store
    doc = store.__doc__.split('\n\n')[1]
    parts = ['#' + store.report(name, res) for name, res in st.items() if name != 'layouts']   # its headings one level down
    layouts = '\n'.join(f"- {k}: {v['us_per_batch']:.2f} µs and {v['bytes_per_batch']:.1f} bytes per batch" for k, v in st.get('layouts', {}).items())
    return '\n## Run store\n\n`RunStore` beside (b), the same runner without it (`bench/store.py`).\n' + doc + '\n\n' + '\n\n'.join(parts) + \
           '\n\nThe layout, 100,000 batches written in transactions of 500:\n' + layouts + '\n'


def cells(line: str) -> list:
    "The cells of a markdown table's row."
    return [c.strip() for c in line.strip().strip('|').split('|')]


def rows(text: str, label: str) -> list:
    "The cells of each table row of `text` whose first cell starts with `label`."
    return [cells(l) for l in text.splitlines() if l.startswith('| ' + label)]


def readme_block(results: str) -> str:
    "The README's headline figures, read from the text of bench/results.md (their one source)."
    machine = re.search(r'^Machine: ([^;]+);', results, re.M)
    date = re.search(r'(\d{4}-\d\d-\d\d) \d\d:\d\d', results)
    out = [f"Measured on {machine.group(1) if machine else 'an unknown machine'}, {date.group(1) if date else 'on an unknown date'}: "
           "time per epoch over the hand-written loop's (overhead per batch in µs).", '',
           '| workload | (b) Runner + AvgStatsCallback | (c) (b) + live plot and panel | peers |', '|---|---:|---:|---|']
    loops = re.findall(r'^### (\w+): (.*?)\n(.*?)(?=^##)', results + '\n##', re.S | re.M)
    for name, describe, body in loops:
        b, c = rows(body, '(b) '), rows(body, '(c) ')
        if not (b and c): continue
        peers = ', '.join(f"{r[0].removeprefix('(peer) ').rsplit(' ', 1)[0]} {r[4]}×" for r in rows(body, '(peer) '))
        out.append(f"| {name}: {describe} | {b[0][4]}× ({b[0][8]} µs) | {c[0][4]}× ({c[0][8]} µs) | {peers or 'not run'} |")
    ins = re.search(r'^### Instructions per batch.*?(?=^##)', results + '\n##', re.S | re.M)
    counts = []
    if ins:
        for name, body in re.findall(r'^(\w+) workload, epochs of.*?\n(.*?)(?=^\w+ workload, epochs of|\Z)', ins.group(0), re.S | re.M):
            b, c = rows(body, '(b) '), rows(body, '(c) ')
            if b and c: counts.append(f"{name} (b) {b[0][2]}, (c) {c[0][2]}")
    if counts: out += ['', f"Instructions per batch over the hand-written loop: {'; '.join(counts)}."]
    section = re.search(r'^## Run store\n.*?(?=^## |\Z)', results, re.S | re.M)
    stored = re.findall(r'^### (\w+): .*?^time, paced.*?\(st\)/\(b\) = ([\d.]+).*?\n(?:of which.*?\(st\)/\(br\) = ([\d.]+).*?\n)?'
                        r'store: ([\d.]+) bytes per training batch, ([\d.,]+) KB per fit', section.group(0), re.S | re.M) if section else []
    if stored: out += [('' if counts else '\n') + 'Run store (`RunStore`), time over (b) (over (b) + the `Recorder` it persists): ' +
                       '; '.join(f"{n} {r}×" + (f" ({br}×)" if br else '') + f", {b} bytes a batch, {kb} KB a fit" for n, r, br, b, kb in stored) + '.']
    update = re.search(r'^## One live-plot update.*?(?=^##|\Z)', results, re.S | re.M)
    if update:
        sizes = [r for r in rows(update.group(0), '') if re.fullmatch(r'[\d,]+', r[0])]
        largest = re.search(r'Largest update: ([\d,]+) bytes', update.group(0))
        if sizes: out += ['', f"One live-plot update with {sizes[-1][0]} batches recorded: {sizes[-1][1]} ms (median)"
                               + (f"; the largest update sent {largest.group(1)} bytes." if largest else '.')]
    return '\n'.join(out)


MARKS = re.compile(r'(<!-- bench:start -->\n).*?(\n?<!-- bench:end -->)', re.S)


def render_readme(results: str) -> None:
    "Write the headline figures of `results` between the benchmark markers of README.md and of nbs/index.ipynb."
    block = readme_block(results)
    fill = lambda text: MARKS.sub(lambda m: m.group(1) + block + '\n<!-- bench:end -->', text)
    readme = HERE.parent / 'README.md'
    if not MARKS.search(readme.read_text()): return print('README.md has no benchmark markers; left alone')
    readme.write_text(fill(readme.read_text()))
    index = HERE.parent / 'nbs' / 'index.ipynb'
    nb = json.loads(index.read_text())
    for cell in nb['cells']:
        text = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown' and MARKS.search(text):
            lines = fill(text).split('\n')
            cell['source'] = [l + '\n' for l in lines[:-1]] + [lines[-1]]
    index.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--peers', action='store_true')
    ap.add_argument('--epochs', type=int, default=None, help='timed epochs per contestant in loop_overhead.py')
    ap.add_argument('--no-instructions', action='store_true', help='skip the valgrind instruction counts')
    ap.add_argument('--instructions-from', default=None, metavar='JSON',
                    help='use the counts of an earlier `bench/instructions.py --json JSON` run (of the same code) instead of counting again')
    ap.add_argument('--reuse', action='store_true',
                    help='take the timings from bench/out/ (an earlier run of the same code) and only write the results')
    ap.add_argument('--render-readme', action='store_true',
                    help="only write the README's headline figures (README.md and nbs/index.ipynb) from bench/results.md as it is")
    a = ap.parse_args(argv)
    if a.render_readme: return render_readme((HERE / 'results.md').read_text())
    OUT.mkdir(exist_ok=True)
    flags = ['--quick'] if a.quick else []
    if a.reuse:
        loop, upd = (json.loads((OUT / f).read_text()) for f in ('loop_overhead.json', 'plot_update.json'))
        mach = OUT / 'machine.json'   # the date and load of the run that timed them, not of this rendering
        m = json.loads(mach.read_text()) if mach.exists() else machine()
    else:
        loop = run('loop_overhead.py', flags + (['--peers'] if a.peers else []) + (['--epochs', str(a.epochs)] if a.epochs else []),
                   OUT / 'loop_overhead.json')
        upd = run('plot_update.py', flags, OUT / 'plot_update.json')
        run('store.py', flags + ['--no-instructions'], OUT / 'store.json')
        m = machine()
        (OUT / 'machine.json').write_text(json.dumps(m))
    import loop_overhead, plot_update, store
    st = json.loads((OUT / 'store.json').read_text()) if (OUT / 'store.json').exists() else {}
    ins = {}
    if a.instructions_from: ins = json.loads(Path(a.instructions_from).read_text())
    elif not (a.quick or a.no_instructions):
        ins = run('instructions.py', [], OUT / 'instructions.json') if shutil.which('valgrind') else {}
        if not ins: print('valgrind is missing (apt-get install valgrind): no instruction counts')
    f = upd['repeated_fits']
    upd_note = (f"Median of {upd['reps']} updates per length, each after new batches and 20 training steps. After {f['fits']} more fits of "
                f"{f['batches_per_fit']:.0f} batches, memory grew by {f['bytes_per_fit']:,.0f} bytes per fit beyond the "
                f"history's arrays and its record of each epoch ({f['record_bytes_per_fit']:,.0f} bytes; tracemalloc, after the traces reached "
                f"`max_points`). "
                f"Largest update: {upd['max_bytes']:,} bytes.")
    md = results_md(m, loop, upd, loop_md(loop),
                    plot_update.table(upd['rows']) + (plot_update.compare_table(upd['compare']) if 'compare' in upd else ''), upd_note,
                    ' '.join(['python bench/run_all.py', *(sys.argv[1:] if argv is None else argv)]), instructions_md(ins, upd), store_md(st))
    (HERE / 'results.md').write_text(md)
    render_readme(md)
    plot(loop, upd, HERE / 'overhead.png', ins)
    print(f"wrote {HERE / 'results.md'} and {HERE / 'overhead.png'}")


if __name__ == '__main__':
    main()
