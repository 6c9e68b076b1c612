"""Instructions per batch of the loop's contestants, counted by valgrind (timing noise cannot touch them).

`loop_overhead.py` measures time, which on a shared virtual machine drifts by ±30% from one second
to the next (pacing the hand-written loop batch by batch cancels most of it). The number of CPU
instructions an epoch executes does not drift at all: this script counts them with valgrind's cachegrind
(`--cache-sim=no`) for (a) the hand-written loop, (r0) the bare `Runner`, (b) `Runner` + `AvgStatsCallback`,
(c) (b) + `LivePlotCallback` with its panel, (d) `Runner` + 20 no-op callbacks, (s) (b) + `ParamScheduler`
and (as) the hand-written loop setting the same lr, on each workload of `loop_overhead.py` (fewer
samples: the counts per batch do not depend on how many batches there are).

Each contestant runs in its own process twice, with 1 and with 2 epochs after the same set-up and
warm-up epoch; the difference of the two totals is one epoch's instructions (start-up, imports and
set-up cancel out). After the warm-up, `gc.freeze()` takes what is alive out of the garbage collector's
view, so that a full collection of the whole process (chance: it fell into (c)'s counted epoch in one
run and added 7%) does not land in one run's count and not the other's. Under valgrind time runs ~50x slower, so (c) runs with `every=inf`: it redraws at
epoch and fit ends only. Its mid-epoch redraws, one every `every` seconds, cost at most
`update time / every` of the training time (`plot_update.py` times one update).
(d)'s dispatch cost per callback per event is ((d) - (r0)) / (20 x events per epoch).

    python bench/instructions.py [--quick] [--workload lesson|small|both] [--json PATH]

Needs `valgrind` (Debian: `apt-get install valgrind`); prints why and exits 0 when it is missing.
Last lines: `instruction_ratio=<(c) / (a)>` of each workload (`small_instruction_ratio=` for the small one).
"""
import argparse, gc, json, os, re, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = {'a': '(a) hand-written loop', 'r0': '(r0) Runner, no callbacks', 'b': '(b) Runner + AvgStatsCallback',
        'c': '(c) (b) + LivePlotCallback + panel (redraws at epoch ends)', 'd': '(d) Runner + 20 no-op callbacks',
        's': '(s) (b) + ParamScheduler', 'as': '(as) hand-written loop setting the same lr'}
BASE = {'s': 'as'}   # what a contestant's ratio is taken against, if not (a)
# samples per workload (full, --quick): per batch, a few hundred batches count as well as thousands
SIZES = {'lesson': (50_000, 10_000), 'small': (5_000, 1_000)}


def child(key: str, epochs: int, n_train: int, workload: str = 'lesson') -> None:
    "Set up `key`, run a warm-up epoch, then `epochs` epochs: what valgrind counts."
    sys.path.insert(0, str(HERE))
    import torch
    from loop_overhead import SCHED, WORKLOADS, Hand, LivePlotContestant, make_data, ours
    torch.set_num_threads(1)
    w = WORKLOADS[workload]
    data = make_data(n_train, n_train // 5, bs=w.bs, nh=w.nh, lr=w.lr)
    if key in ('a', 'as'): c = Hand(data, sched=SCHED if key == 'as' else None)
    else: c = next(c for c in ours(data) if c.key == key)  # makes every contestant of ours; cheap, and the same in both runs
    if isinstance(c, LivePlotContestant): c.run.live_plot.every = float('inf')
    c.epoch()
    # What is alive now (torch, the data, the contestant: ~470k objects) leaves the garbage collector's view: a full
    # collection over it costs ~100 M instructions, and whether one falls into the counted epochs is chance.
    gc.collect(); gc.freeze()
    for _ in range(epochs): c.epoch()


def count(key: str, epochs: int, n_train: int, workload: str = 'lesson') -> int:
    "Instructions executed by one child process, as cachegrind reports them."
    with tempfile.TemporaryDirectory() as d:
        cmd = ['valgrind', '--tool=cachegrind', '--cache-sim=no', f'--cachegrind-out-file={d}/out',
               sys.executable, __file__, '--child', key, str(epochs), str(n_train), workload]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONHASHSEED': '0'})   # the same hashes in both runs
    m = re.search(r'I\s+refs:\s+([\d,]+)', p.stderr)
    if p.returncode or not m:
        raise RuntimeError(f"valgrind run of {key!r} ({epochs} epochs) failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
    return int(m.group(1).replace(',', ''))


def count_workload(workload: str, quick: bool = False, keys=tuple(KEYS)) -> dict:
    "Instructions per epoch and per batch of each of `keys` on `workload`, two valgrind runs each, as many at once as there are cores."
    from loop_overhead import WORKLOADS
    w = WORKLOADS[workload]
    n_train = SIZES[workload][quick]
    batches = -(-n_train // w.bs) + -(-(n_train // 5) // (2 * w.bs))
    keys = [*dict.fromkeys(['a', *keys, *(BASE[k] for k in keys if k in BASE)])]
    jobs = [(k, e) for k in keys for e in (1, 2)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as ex:
        totals = dict(zip(jobs, ex.map(lambda j: count(*j, n_train, workload), jobs)))
    per_epoch = {k: totals[k, 2] - totals[k, 1] for k in keys}
    rows = [dict(key=k, label=KEYS[k], per_epoch=per_epoch[k], per_batch=per_epoch[k] / batches,
                 ratio=per_epoch[k] / per_epoch[BASE.get(k, 'a')]) for k in keys]
    res = dict(rows=rows, workload=workload, n_train=n_train, batches=batches,
               instruction_ratio=next((r['ratio'] for r in rows if r['key'] == 'c'), float('nan')))
    if 'd' in per_epoch and 'r0' in per_epoch:
        sys.path.insert(0, str(HERE))
        from loop_overhead import events_per_epoch, make_data
        n_events = events_per_epoch(make_data(n_train, n_train // 5, bs=w.bs, nh=w.nh, lr=w.lr))
        res['dispatch_per_cb_event'] = (per_epoch['d'] - per_epoch['r0']) / (20 * n_events)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer samples (10k lesson, 1k small)')
    ap.add_argument('--workload', choices=[*SIZES, 'both'], default='both')
    ap.add_argument('--keys', nargs='+', choices=list(KEYS), default=list(KEYS), help='the contestants to count ((a) always)')
    ap.add_argument('--json', default=None, help='also write the results as JSON to this path')
    ap.add_argument('--child', nargs='+', help=argparse.SUPPRESS)   # KEY EPOCHS N_TRAIN [WORKLOAD]
    a = ap.parse_args(argv)
    if a.child: return child(a.child[0], int(a.child[1]), int(a.child[2]), *a.child[3:])
    if not shutil.which('valgrind'):
        print('valgrind is not installed (apt-get install valgrind): no instruction counts')
        return {}
    sys.path.insert(0, str(HERE))
    out = {name: count_workload(name, a.quick, a.keys) for name in (SIZES if a.workload == 'both' else [a.workload])}
    for name, res in out.items():
        print(f"## {name}: {res['batches']} batches per epoch\n")
        print(table(res))
        print()
    if a.json:
        with open(a.json, 'w') as f: json.dump(out, f, indent=1)
    for name, res in out.items():
        print(f"{'' if name == 'lesson' else name + '_'}instruction_ratio={res['instruction_ratio']:.4f}")
    return out


def table(res: dict) -> str:
    lines = ['| contestant | instructions per epoch | per batch | ratio |', '|---|---:|---:|---:|']
    lines += [f"| {r['label']} | {r['per_epoch']/1e6:,.1f} M | {r['per_batch']/1e3:,.1f} k | {r['ratio']:.3f}"
              f"{' to (as)' if r['key'] in BASE else ''} |" for r in res['rows']]
    if 'dispatch_per_cb_event' in res:
        lines.append(f"\n(d) - (r0): {res['dispatch_per_cb_event']:.0f} instructions per callback per event.")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
