"""Instructions per batch of the loop's contestants, counted by valgrind (timing noise cannot touch them).

`loop_overhead.py` measures time, which on a shared virtual machine drifts by ±30% from one second
to the next (pacing the hand-written loop batch by batch cancels most of it). The number of CPU
instructions an epoch executes does not drift at all: this script counts them with valgrind's callgrind
for (a) the hand-written loop, (r0) the bare `Runner`, (b) `Runner` + `AvgStatsCallback`, (c) (b) +
`LivePlotCallback` with its panel, (d) `Runner` + 20 no-op callbacks, (s) (b) + `ParamScheduler` and (as)
the hand-written loop setting the same lr, on each workload of `loop_overhead.py` (fewer samples: the
counts per batch hardly depend on how many batches there are).

One process per workload, under valgrind once (importing torch costs more instructions than
everything counted): for each contestant it sets it up, runs a warm-up epoch, takes what is alive out
of the garbage collector's view (`gc.freeze()`: a full collection over ~470k objects costs ~100 M
instructions, and whether one falls into a counted epoch is chance), then runs one epoch between two
calls of libc's `qsort` (through ctypes). Callgrind writes its counts at each (`--dump-before=qsort_r`):
the second file holds the epoch (and a few thousand instructions of the calls), and nothing of
start-up or set-up. (Dumps around a qsort call that runs the epoch lost it: callgrind took the ctypes
callback's jump for qsort's return.) Under valgrind time runs ~50x slower, so (c) runs with
`every=inf`: it redraws at epoch and fit ends only. Its mid-epoch redraws, one every `every` seconds, cost
at most `update time / every` of the training time (`plot_update.py` times one update). (d)'s dispatch cost
per callback per event is ((d) - (r0)) / (20 x events per epoch).

    python bench/instructions.py [--quick] [--workload lesson|small|both] [--keys a b ...] [--json PATH]

Needs `valgrind` (Debian: `apt-get install valgrind`); prints why and exits 0 when it is missing.
Last lines: `instruction_ratio=<(c) / (a)>` of each workload (`small_instruction_ratio=` for the small one).
"""
import argparse, ctypes, gc, json, os, re, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = {'a': '(a) hand-written loop', 'r0': '(r0) Runner, no callbacks', 'b': '(b) Runner + AvgStatsCallback',
        'c': '(c) (b) + LivePlotCallback + panel (redraws at epoch ends)', 'd': '(d) Runner + 20 no-op callbacks',
        's': '(s) (b) + ParamScheduler', 'as': '(as) hand-written loop setting the same lr'}
BASE = {'s': 'as'}   # what a contestant's ratio is taken against, if not (a)
# train samples per workload (full, --quick): per batch, a few hundred batches count about as well as thousands
SIZES = {'lesson': (10_000, 2_000), 'small': (2_000, 500)}
_CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def in_qsort(f) -> None:
    "Run `f()` inside one call of libc's `qsort` (two items, one comparison): a call callgrind's dumps can mark."
    items = (ctypes.c_int * 2)(0, 1)
    libc = ctypes.CDLL(None)
    libc.qsort(items, 2, ctypes.sizeof(ctypes.c_int), _CMP(lambda a, b: (f(), 0)[1]))


def contestant(key: str, data):
    "The contestant `key` of `loop_overhead.py` on `data`, set up."
    from loop_overhead import SCHED, Hand, LivePlotContestant, ours
    if key in ('a', 'as'): return Hand(data, sched=SCHED if key == 'as' else None)
    c, = ours(data, [key])
    if isinstance(c, LivePlotContestant): c.run.live_plot.every = float('inf')
    return c


def child(keys: list, n_train: int, workload: str = 'lesson', out_dir: str = None) -> dict:
    "For each of `keys`: set up, a warm-up epoch, then one epoch inside `in_qsort`; under valgrind, that epoch's dump file."
    sys.path.insert(0, str(HERE))
    import torch
    from loop_overhead import WORKLOADS, make_data
    torch.set_num_threads(1)
    w = WORKLOADS[workload]
    data = make_data(n_train, n_train // 5, bs=w.bs, nh=w.nh, lr=w.lr)
    files = {}
    for key in keys:
        c = contestant(key, data)
        c.epoch()
        gc.collect(); gc.freeze()
        before = set(os.listdir(out_dir)) if out_dir else set()
        in_qsort(lambda: None)   # callgrind dumps what ran so far (set-up, warm-up) ...
        c.epoch()
        in_qsort(lambda: None)   # ... and here the epoch
        if out_dir: files[key] = sorted(set(os.listdir(out_dir)) - before, key=lambda f: int(f.rsplit('.', 1)[1]))[1:]
        c.close(); del c
        gc.unfreeze(); gc.collect()
    if out_dir: (Path(out_dir) / 'keys.json').write_text(json.dumps(files))
    return files


def count(keys: list, n_train: int, workload: str) -> dict:
    "Instructions of one epoch of each of `keys`, from one child process under callgrind."
    with tempfile.TemporaryDirectory() as d:
        cmd = ['valgrind', '--tool=callgrind', '--dump-before=qsort_r', '--dump-instr=no',
               f'--callgrind-out-file={d}/out', sys.executable, __file__, '--child-all', workload, str(n_train), d, *keys]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONHASHSEED': '0'})
        if p.returncode or not (Path(d) / 'keys.json').exists():
            raise RuntimeError(f"callgrind run of {keys} on {workload!r} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
        files = json.loads((Path(d) / 'keys.json').read_text())
        totals = {}
        for key, names in files.items():   # one dump, unless the epoch itself called qsort
            totals[key] = sum(int(re.search(r'^totals:\s+(\d+)', (Path(d) / f).read_text(), re.M).group(1)) for f in names)
    return totals


def count_workload(workload: str, quick: bool = False, keys=tuple(KEYS)) -> dict:
    "Instructions per epoch and per batch of each of `keys` on `workload` (two processes: the keys split between cores)."
    sys.path.insert(0, str(HERE))
    from loop_overhead import WORKLOADS, events_per_epoch, make_data
    w = WORKLOADS[workload]
    n_train = SIZES[workload][quick]
    data = make_data(n_train, n_train // 5, bs=w.bs, nh=w.nh, lr=w.lr)
    batches = len(data.train_dl) + len(data.valid_dl)
    keys = [*dict.fromkeys(['a', *keys, *(BASE[k] for k in keys if k in BASE)])]
    n = max(1, min(os.cpu_count() or 1, len(keys)))
    with ThreadPoolExecutor(n) as ex:
        per_epoch = {k: v for part in ex.map(lambda ks: count(ks, n_train, workload), [keys[i::n] for i in range(n)])
                     for k, v in part.items()}
    rows = [dict(key=k, label=KEYS[k], per_epoch=per_epoch[k], per_batch=per_epoch[k] / batches,
                 ratio=per_epoch[k] / per_epoch[BASE.get(k, 'a')]) for k in keys]
    res = dict(rows=rows, workload=workload, n_train=n_train, batches=batches,
               instruction_ratio=next((r['ratio'] for r in rows if r['key'] == 'c'), float('nan')))
    if 'd' in per_epoch and 'r0' in per_epoch:
        res['dispatch_per_cb_event'] = (per_epoch['d'] - per_epoch['r0']) / (20 * events_per_epoch(data))
    return res


def table(res: dict) -> str:
    lines = ['| contestant | instructions per epoch | per batch | ratio |', '|---|---:|---:|---:|']
    lines += [f"| {r['label']} | {r['per_epoch']/1e6:,.1f} M | {r['per_batch']/1e3:,.1f} k | {r['ratio']:.3f}"
              f"{' to (as)' if r['key'] in BASE else ''} |" for r in res['rows']]
    if 'dispatch_per_cb_event' in res:
        lines.append(f"\n(d) - (r0): {res['dispatch_per_cb_event']:.0f} instructions per callback per event.")
    return '\n'.join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer samples (2k lesson, 500 small)')
    ap.add_argument('--workload', choices=[*SIZES, 'both'], default='both')
    ap.add_argument('--keys', nargs='+', choices=list(KEYS), default=list(KEYS), help='the contestants to count ((a) always)')
    ap.add_argument('--json', default=None, help='also write the results as JSON to this path')
    ap.add_argument('--child', nargs='+', help=argparse.SUPPRESS)       # KEY EPOCHS N_TRAIN [WORKLOAD]: run once, no valgrind
    ap.add_argument('--child-all', nargs='+', help=argparse.SUPPRESS)   # WORKLOAD N_TRAIN OUT_DIR KEY...: what callgrind runs
    a = ap.parse_args(argv)
    if a.child: return child([a.child[0]], int(a.child[2]), *a.child[3:])
    if a.child_all: return child(a.child_all[3:], int(a.child_all[1]), a.child_all[0], a.child_all[2])
    if not shutil.which('valgrind'):
        print('valgrind is not installed (apt-get install valgrind): no instruction counts')
        return {}
    out = {name: count_workload(name, a.quick, a.keys) for name in (SIZES if a.workload == 'both' else [a.workload])}
    for name, res in out.items():
        print(f"## {name}: {res['n_train']:,} train samples, {res['batches']} batches per epoch\n")
        print(table(res))
        print()
    if a.json:
        with open(a.json, 'w') as f: json.dump(out, f, indent=1)
    for name, res in out.items():
        print(f"{'' if name == 'lesson' else name + '_'}instruction_ratio={res['instruction_ratio']:.4f}")
    return out


if __name__ == '__main__':
    main()
