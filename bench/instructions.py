"""Instructions per epoch of the loop's contestants, counted by valgrind (timing noise cannot touch them).

`loop_overhead.py` measures time, which on a shared virtual machine drifts by ±30% from one second
to the next (pacing the hand-written loop batch by batch cancels most of it). The number of CPU
instructions an epoch executes does not drift at all: this script counts them with valgrind's cachegrind
(`--cache-sim=no`) for (a) the hand-written loop, (b) `Runner` + `AvgStatsCallback` and (c) (b) +
`LivePlotCallback` with its panel, on the workload of `loop_overhead.py` (50k/10k, 782 + 79 batches).

Each contestant runs in its own process twice, with 1 and with 2 epochs after the same set-up and
warm-up epoch; the difference of the two totals is one epoch's instructions (start-up, imports and
set-up cancel out). After the warm-up, `gc.freeze()` takes what is alive out of the garbage collector's
view, so that a full collection of the whole process (chance: it fell into (c)'s counted epoch in one
run and added 7%) does not land in one run's count and not the other's. Under valgrind time runs ~50x slower, so (c) runs with `every=inf`: it redraws at
epoch and fit ends only. Its mid-epoch redraws, one every `every` seconds, cost at most
`update time / every` of the training time (`plot_update.py` times one update).

    python bench/instructions.py [--quick] [--json PATH]

Needs `valgrind` (Debian: `apt-get install valgrind`); prints why and exits 0 when it is missing.
Last line: `instruction_ratio=<(c) / (a)>`.
"""
import argparse, gc, json, os, re, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = {'a': '(a) hand-written loop', 'b': '(b) Runner + AvgStatsCallback',
        'c': '(c) (b) + LivePlotCallback + panel (redraws at epoch ends)'}


def child(key: str, epochs: int, n_train: int) -> None:
    "Set up `key`, run a warm-up epoch, then `epochs` epochs: what valgrind counts."
    sys.path.insert(0, str(HERE))
    import torch
    from loop_overhead import Hand, LivePlotContestant, RunnerContestant, make_data, ours
    torch.set_num_threads(1)
    data = make_data(n_train, n_train // 5)
    if key == 'a': c = Hand(data)
    else: c = next(c for c in ours(data) if c.key == key)  # makes every contestant of ours; cheap, and the same in both runs
    if isinstance(c, LivePlotContestant): c.run.live_plot.every = float('inf')
    c.epoch()
    # What is alive now (torch, the data, the contestant: ~470k objects) leaves the garbage collector's view: a full
    # collection over it costs ~100 M instructions, and whether one falls into the counted epochs is chance.
    gc.collect(); gc.freeze()
    for _ in range(epochs): c.epoch()


def count(key: str, epochs: int, n_train: int) -> int:
    "Instructions executed by one child process, as cachegrind reports them."
    with tempfile.TemporaryDirectory() as d:
        cmd = ['valgrind', '--tool=cachegrind', '--cache-sim=no', f'--cachegrind-out-file={d}/out',
               sys.executable, __file__, '--child', key, str(epochs), str(n_train)]
        p = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r'I\s+refs:\s+([\d,]+)', p.stderr)
    if p.returncode or not m:
        raise RuntimeError(f"valgrind run of {key!r} ({epochs} epochs) failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
    return int(m.group(1).replace(',', ''))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='10k train / 2k valid samples')
    ap.add_argument('--json', default=None, help='also write the results as JSON to this path')
    ap.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child: return child(a.child[0], int(a.child[1]), int(a.child[2]))
    if not shutil.which('valgrind'):
        print('valgrind is not installed (apt-get install valgrind): no instruction counts')
        return {}
    n_train = 10_000 if a.quick else 50_000
    batches = -(-n_train // 64) + -(-(n_train // 5) // 128)
    jobs = [(k, e) for k in KEYS for e in (1, 2)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as ex:
        totals = dict(zip(jobs, ex.map(lambda j: count(*j, n_train), jobs)))
    per_epoch = {k: totals[k, 2] - totals[k, 1] for k in KEYS}
    rows = [dict(key=k, label=KEYS[k], per_epoch=per_epoch[k], per_batch=per_epoch[k] / batches,
                 ratio=per_epoch[k] / per_epoch['a']) for k in KEYS]
    res = dict(rows=rows, n_train=n_train, batches=batches, instruction_ratio=rows[-1]['ratio'])
    print(table(res))
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1)
    print(f"instruction_ratio={res['instruction_ratio']:.4f}")
    return res


def table(res: dict) -> str:
    lines = ['| contestant | instructions per epoch | per batch | ratio to (a) |', '|---|---:|---:|---:|']
    lines += [f"| {r['label']} | {r['per_epoch']/1e6:,.1f} M | {r['per_batch']/1e3:,.1f} k | {r['ratio']:.3f} |"
              for r in res['rows']]
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
