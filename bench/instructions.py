"""Instructions per batch of the loop's contestants, counted by valgrind (timing noise cannot touch them).

`loop_overhead.py` measures time, which on a shared virtual machine drifts by ±30% from one second
to the next (pacing the hand-written loop batch by batch cancels most of it). The number of CPU
instructions an epoch executes does not drift at all: this script counts them with valgrind's callgrind
for (a) the hand-written loop, (r0) the bare `Runner`, (b) `Runner` + `AvgStatsCallback`, (c) (b) +
`LivePlotCallback` with its panel, (d) `Runner` + 20 no-op callbacks, (s) (b) + `ParamScheduler` and (as)
the hand-written loop setting the same lr, on each workload of `loop_overhead.py` (fewer samples: the
counts per batch hardly depend on how many batches there are).

Each contestant is counted in a process of its own under valgrind, with address space layout randomisation off
(`setarch -R`): the same code then gives the same count, to the instruction (two runs of (a): 630,724.5 per batch
both times); with it on, or after other contestants in the same process, the count of the same loop moved by up to
3% (611k to 631k per batch in five runs). In that process, at n and at 2n training samples, it sets the contestant up, runs a warm-up epoch, takes what
is alive out of the garbage collector's view (`gc.freeze()`: a full collection over ~470k objects costs ~100 M
instructions, and whether one falls into a counted epoch is chance), then runs one epoch between two calls of libc's
`qsort` (through ctypes). Callgrind writes its counts at each (`--dump-before=qsort_r`): the second file holds the
epoch (and a few thousand instructions of the calls), and nothing of start-up or set-up. (Dumps around a qsort call
that runs the epoch lost it: callgrind took the ctypes callback's jump for qsort's return.)
Per batch: (epoch at 2n - epoch at n) / (the difference in batches), so what a fit costs once is not spread over the
batches; per fit: the rest.
Under valgrind time runs ~50x slower, so (c) runs with `every=inf`: it redraws at epoch and fit ends only. Its
mid-epoch redraws, one every `every` seconds, cost at most `update time / every` of the training time
(`plot_update.py` times one update). (d)'s dispatch cost per callback per event is ((d) - (r0)) per batch / (20 x
events per batch).

    python bench/instructions.py [--quick] [--workload lesson|small|both] [--keys a b ...] [--json PATH]

Needs `valgrind` (Debian: `apt-get install valgrind`); prints why and exits 0 when it is missing.
Last lines: `instruction_ratio=<(c) / (a)>` of each workload (`small_instruction_ratio=` for the small one).
"""
import argparse, ctypes, gc, json, os, platform, re, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = {'a': '(a) hand-written loop', 'r0': '(r0) Runner, no callbacks', 'b': '(b) Runner + AvgStatsCallback',
        'c': '(c) (b) + LivePlotCallback + panel (redraws at epoch ends)', 'd': '(d) Runner + 20 no-op callbacks',
        's': '(s) (b) + ParamScheduler', 'as': '(as) hand-written loop setting the same lr'}
BASE = {'s': 'as'}   # what a contestant's ratio is taken against, if not (a)
# train samples per workload (full, --quick), counted at n and at 2n: the counts do not drift, so the difference of
# two epochs of ~70 and ~140 batches gives the instructions of a batch as well as longer epochs would
SIZES = {'lesson': (4_000, 2_000), 'small': (1_000, 500)}
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
    """For each of `keys`, at `n_train` and at twice as many samples: set up, a warm-up epoch, then one epoch inside
    `in_qsort`; under valgrind, each epoch's dump files (`{key: [files at n_train, files at 2 n_train]}`)."""
    sys.path.insert(0, str(HERE))
    import torch
    from loop_overhead import WORKLOADS
    torch.set_num_threads(1)
    w = WORKLOADS[workload]
    datas = [w.data(sizes=(n, n // 5)) for n in (n_train, 2 * n_train)]
    files = {}
    for key in keys:
        files[key] = []
        for data in datas:
            c = contestant(key, data)
            c.epoch()
            gc.collect(); gc.freeze()
            before = set(os.listdir(out_dir)) if out_dir else set()
            in_qsort(lambda: None)   # callgrind dumps what ran so far (set-up, warm-up) ...
            c.epoch()
            in_qsort(lambda: None)   # ... and here the epoch
            if out_dir: files[key].append(sorted(set(os.listdir(out_dir)) - before, key=lambda f: int(f.rsplit('.', 1)[1]))[1:])
            c.close(); del c
            gc.unfreeze(); gc.collect()
    if out_dir: (Path(out_dir) / 'keys.json').write_text(json.dumps(files))
    return files


def count(keys: list, n_train: int, workload: str) -> dict:
    "Instructions of one epoch of each of `keys` at `n_train` and at twice as many samples, from one process under callgrind."
    with tempfile.TemporaryDirectory() as d:
        no_aslr = ['setarch', platform.machine(), '-R'] if shutil.which('setarch') else []   # the same count every run
        cmd = no_aslr + ['valgrind', '--tool=callgrind', '--dump-before=qsort_r', '--dump-instr=no',
               f'--callgrind-out-file={d}/out', sys.executable, __file__, '--child-all', workload, str(n_train), d, *keys]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONHASHSEED': '0'})
        if p.returncode or not (Path(d) / 'keys.json').exists():
            raise RuntimeError(f"callgrind run of {keys} on {workload!r} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
        files = json.loads((Path(d) / 'keys.json').read_text())
        total = lambda names: sum(int(re.search(r'^totals:\s+(\d+)', (Path(d) / f).read_text(), re.M).group(1)) for f in names)
        return {key: [total(names) for names in sizes] for key, sizes in files.items()}   # one dump each, unless the epoch called qsort


def count_workload(workload: str, quick: bool = False, keys=tuple(KEYS)) -> dict:
    """Instructions per batch and per fit of each of `keys` on `workload` (two processes: the keys split between cores).
    Per batch: the difference between an epoch of 2n and of n samples over the difference in batches, so that what a
    fit costs once (set-up, the end-of-epoch print and redraw) is not spread over the batches; per fit: the rest."""
    sys.path.insert(0, str(HERE))
    from loop_overhead import WORKLOADS, events_per_epoch
    w = WORKLOADS[workload]
    n_train = SIZES[workload][quick]
    datas = [w.data(sizes=(n, n // 5)) for n in (n_train, 2 * n_train)]
    batches = [len(d.train_dl) + len(d.valid_dl) for d in datas]
    keys = [*dict.fromkeys(['a', *keys, *(BASE[k] for k in keys if k in BASE)])]
    with ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, len(keys)))) as ex:   # a process per contestant
        counts = {k: v for part in ex.map(lambda k: count([k], n_train, workload), keys) for k, v in part.items()}
    per_batch = {k: (c2 - c1) / (batches[1] - batches[0]) for k, (c1, c2) in counts.items()}
    per_fit = {k: c1 - per_batch[k] * batches[0] for k, (c1, _) in counts.items()}
    rows = [dict(key=k, label=KEYS[k], per_epoch=counts[k][1], per_batch=per_batch[k], per_fit=per_fit[k],
                 ratio=per_batch[k] / per_batch[BASE.get(k, 'a')],
                 extra_per_batch=per_batch[k] - per_batch[BASE.get(k, 'a')]) for k in keys]
    res = dict(rows=rows, workload=workload, n_train=2 * n_train, batches=batches[1], batches_small=batches[0],
               instruction_ratio=next((r['ratio'] for r in rows if r['key'] == 'c'), float('nan')))
    if 'd' in per_batch and 'r0' in per_batch:   # events per batch: the same at both sizes (fit-level events cancel)
        events = (events_per_epoch(datas[1]) - events_per_epoch(datas[0])) / (batches[1] - batches[0])
        res['dispatch_per_cb_event'] = (per_batch['d'] - per_batch['r0']) / (20 * events)
    return res


def table(res: dict) -> str:
    lines = ['| contestant | instructions per batch | more than (a) per batch | ratio | per fit (once) |', '|---|---:|---:|---:|---:|']
    lines += [f"| {r['label']} | {r['per_batch']/1e3:,.1f} k | {r['extra_per_batch']/1e3:+,.1f} k | {r['ratio']:.4f}"
              f"{' to (as)' if r['key'] in BASE else ''} | {r['per_fit']/1e6:,.2f} M |" for r in res['rows']]
    if 'dispatch_per_cb_event' in res:
        lines.append(f"\n(d) - (r0): {res['dispatch_per_cb_event']:.0f} instructions per callback per event.")
    return '\n'.join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer samples (2k and 4k lesson, 500 and 1k small)')
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
        print(f"## {name}: epochs of {res['batches_small']} and {res['batches']} batches ({res['n_train']:,} train samples)\n")
        print(table(res))
        print()
    if a.json:
        with open(a.json, 'w') as f: json.dump(out, f, indent=1)
    for name, res in out.items():
        print(f"{'' if name == 'lesson' else name + '_'}instruction_ratio={res['instruction_ratio']:.4f}")
    return out


if __name__ == '__main__':
    main()
