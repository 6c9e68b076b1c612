"""What the run store (`RunStore`, nbs/12_store.ipynb) costs: instructions and time per batch, its hand-offs, and bytes.

Contestants, on the workloads of `loop_overhead.py`: (b) `Runner` + `AvgStatsCallback`, and (st) (b) + `RunStore`.
- Instructions per batch, counted by valgrind exactly as `instructions.py` counts them (a process per contestant,
  address space layout randomisation off, an epoch of n and of 2n samples between two marks): (st) runs with
  `every=inf`, so what is counted is its per-batch path (the clock check) and its hand-offs at epoch and fit ends.
- One hand-off at `every` = 0.5 s: the fit's thread takes the batches of 0.5 s at the workload's speed out of the
  record (`batch_chunk`) and the writer thread writes them (`StoreWriter.write`, one transaction): timed, and taken as
  a share of the 0.5 s it stands for.
- Time per epoch, paced against the hand-written loop as `loop_overhead.py` does: (st) over (b), and over (br), (b) + the
  `Recorder`: the one record of the run, which the store requires and persists (and the live plot requires too). An epoch (a fit) ends
  when `fit` returns, as the user sees it; the writer thread makes its last write on another core meanwhile.
- Bytes in the store: the file after a fit of 1 and of 9 epochs: per training batch, and per fit (the rest).
- The layout: a row per batch against float32 chunks of 500 batches, written by one connection: µs and bytes per batch.

    python bench/store.py [--quick] [--workload lesson|small|both] [--no-instructions] [--json PATH]

Last line: `store_overhead=<the largest of (st)/(b) - 1 in time over the workloads run>`.
"""
import argparse, json, math, os, re, shutil, sqlite3, statistics, subprocess, sys, tempfile, time
from functools import partial
from pathlib import Path
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import instructions   # noqa: E402
from loop_overhead import WORKLOADS, Pacer, RunnerContestant, make_learner, measure, ours, paced   # noqa: E402
from callbacks_widget.learner import accuracy   # noqa: E402
from callbacks_widget.runner import Runner   # noqa: E402
from callbacks_widget.stats import AvgStatsCallback   # noqa: E402
from callbacks_widget.history import History, Recorder   # noqa: E402
from callbacks_widget.store import RunStore, StoreWriter, batch_chunk, connect, insert_fit, wait_for_writers   # noqa: E402

EVERY = 0.5


class StoreContestant(RunnerContestant):
    """(st): (b) + a `RunStore` writing to `path`. Timed, an epoch ends when its fit returns, as a user sees it (the writer
    thread finishes on another core); counted (`wait`), it ends once the writer has, so that all the store's work is counted."""
    def __init__(self, data, path: Path, every: float = EVERY, wait: bool = False):
        super().__init__('st', '(st) (b) + RunStore', data, lambda: Runner(
            cb_funcs=[partial(AvgStatsCallback, [accuracy]), partial(RunStore, path, every=every)]))
        self.path, self.wait = path, wait
    def epoch(self):
        super().epoch()
        if self.wait: wait_for_writers(self.path)


def store_contestant(data, path: Path, every: float = EVERY, wait: bool = False) -> StoreContestant: return StoreContestant(data, path, every, wait)


def contestant(key: str, data):
    "`instructions.contestant`, knowing (st) too (its store in a folder of its own, `every=inf`)."
    if key != 'st': return _contestant(key, data)
    return store_contestant(data, Path(tempfile.mkdtemp())/'runs.sqlite', every=math.inf, wait=True)

_contestant, instructions.contestant = instructions.contestant, contestant


def count(keys: list, n_train: int, workload: str) -> dict:
    "Instructions of one epoch of each of `keys` at `n_train` and at 2 `n_train` samples, in one process under callgrind."
    with tempfile.TemporaryDirectory() as d:
        no_aslr = ['setarch', os.uname().machine, '-R'] if shutil.which('setarch') else []
        cmd = no_aslr + ['valgrind', '--tool=callgrind', '--dump-before=qsort_r', '--dump-instr=no', f'--callgrind-out-file={d}/out',
                         sys.executable, __file__, '--child-all', workload, str(n_train), d, *keys]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONHASHSEED': '0'})
        if p.returncode or not (Path(d)/'keys.json').exists():
            raise RuntimeError(f"callgrind run of {keys} on {workload!r} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
        files = json.loads((Path(d)/'keys.json').read_text())
        total = lambda names: sum(int(re.search(r'^totals:\s+(\d+)', (Path(d)/f).read_text(), re.M).group(1)) for f in names)
        return {key: [total(names) for names in sizes] for key, sizes in files.items()}


def count_workload(workload: str, quick: bool) -> dict:
    "Instructions per batch of (a), (b) and (st) on `workload`, and what (st) adds to (b) per batch and per fit."
    w, n_train = WORKLOADS[workload], instructions.SIZES[workload][quick]
    datas = [w.data(sizes=(n, n // 5)) for n in (n_train, 2 * n_train)]
    batches = [len(d.train_dl) + len(d.valid_dl) for d in datas]
    counts = {k: v for key in ('a', 'b', 'st') for k, v in count([key], n_train, workload).items()}
    per_batch = {k: (c2 - c1) / (batches[1] - batches[0]) for k, (c1, c2) in counts.items()}
    per_fit = {k: c1 - per_batch[k] * batches[0] for k, (c1, _) in counts.items()}
    return dict(per_batch=per_batch, per_fit=per_fit, batches=batches[1], st_over_b=per_batch['st'] - per_batch['b'],
                st_over_b_ratio=(per_batch['st'] - per_batch['b']) / per_batch['a'], st_fit_over_b=per_fit['st'] - per_fit['b'])


def batches_per_second(workload: str, quick: bool) -> float:
    "Training batches per second of (b) on `workload` here (one fit of one epoch, after a warm-up one)."
    data = WORKLOADS[workload].data(quick)
    c = ours(data, ['b'])[0]
    c.epoch()
    t = time.perf_counter(); c.epoch()
    return (len(data.train_dl) + len(data.valid_dl)) / (time.perf_counter() - t)


def hand_off_seconds(n: int, rounds: int = 20) -> dict:
    "Seconds of one hand-off of `n` batches: taking them out of the record (fit's thread) and writing them (writer thread); medians."
    h = History(); h.begin_fit(('train_eval', 'recorder', 'run_store')); h.add_batches(np.random.rand(n).tolist(), [0.1] * n); h.end_fit()
    with tempfile.TemporaryDirectory() as d:
        con = connect(Path(d)/'runs.sqlite', write=True)
        w = StoreWriter(con, Path(d)/'runs.sqlite')   # not started: `write` is timed on this thread
        k = insert_fit(con, dict(started=time.time(), status='running'))
        take, write = [], []
        for i in range(rounds):
            t = time.perf_counter(); chunk = batch_chunk(h, 0, 0, n, 1); t1 = time.perf_counter()
            w.write([(k, (i * n, *chunk[1:]), [], None)]); t2 = time.perf_counter()
            take.append(t1 - t); write.append(t2 - t1)
        con.close()
    return dict(batches=n, take_us=1e6 * statistics.median(take), write_us=1e6 * statistics.median(write))


def store_bytes(workload: str, quick: bool, fits: int = 41) -> dict:
    """Bytes of the store file: empty; after a fit of 1 epoch and one of 9 (per training batch, from their difference); after 1
    and after `fits` fits of 1 epoch of 4 batches in one file (per fit, less its batches). SQLite grows a file by whole
    pages (4 KB): only differences over many batches and many fits are measured."""
    data, few = WORKLOADS[workload].data(quick), WORKLOADS[workload].data(sizes=(256, 64))
    sizes, size = {}, lambda p: p.stat().st_size
    with tempfile.TemporaryDirectory() as d:
        connect(Path(d)/'empty.sqlite', write=True).close()
        sizes[0] = size(Path(d)/'empty.sqlite')
        for key, dat, epochs, times in (('one', data, 1, 1), ('nine', data, 9, 1), ('few', few, 1, 1), ('many', few, 1, fits)):
            path = Path(d)/f'{key}.sqlite'
            run, learn = Runner(cb_funcs=[partial(RunStore, path)]), make_learner(dat)
            for _ in range(times): run.fit(epochs, learn)
            wait_for_writers(path)
            sizes[key] = size(path)
    n = len(data.train_dl)
    per_batch = (sizes['nine'] - sizes['one']) / (8 * n)
    per_fit = (sizes['many'] - sizes['few']) / (fits - 1) - per_batch * len(few.train_dl)
    return dict(empty=sizes[0], one_epoch=sizes['one'], nine_epochs=sizes['nine'], fits=fits, fits_bytes=sizes['many'],
                few_batches=len(few.train_dl), train_batches_per_epoch=n, per_batch=per_batch, per_fit=per_fit)


def hook_seconds(workload: str, quick: bool, fits: int = 5) -> dict:
    "Time in the store's hooks on the fit's thread (`cb_seconds`: begin_fit, the batches' clock checks, hand-offs, after_fit) per fit of one epoch; medians."
    data = WORKLOADS[workload].data(quick)
    with tempfile.TemporaryDirectory() as d:
        c = store_contestant(data, Path(d)/'runs.sqlite')
        spent, took = [], []
        for _ in range(fits + 1):
            t = time.perf_counter(); c.epoch(); took.append(time.perf_counter() - t)
            spent.append(c.run.cb_seconds['run_store'])
        wait_for_writers(Path(d)/'runs.sqlite')
    spent, took = spent[1:], took[1:]
    return dict(ms_per_fit=1e3 * statistics.median(spent), share=statistics.median(s / t for s, t in zip(spent, took)),
                fit_ms=1e3 * statistics.median(took))


def paced_times(workload: str, quick: bool, epochs: int) -> dict:
    "(b) and (st) timed epoch by epoch, paced against the hand-written loop: their ratios to it, and (st) over (b)."
    w = WORKLOADS[workload]
    data = w.data(quick)
    pacer = Pacer(make_learner(data, seed=1))
    theirs = paced(data, pacer)
    with tempfile.TemporaryDirectory() as d:
        recorded = RunnerContestant('br', '(br) (b) + Recorder', theirs, lambda: Runner(cb_funcs=[partial(AvgStatsCallback, [accuracy]), Recorder]))
        contestants = ours(theirs, ['b']) + [recorded, store_contestant(theirs, Path(d)/'runs.sqlite')]
        times = measure(pacer, contestants, epochs)
        wait_for_writers(Path(d)/'runs.sqlite')
    n = len(data.train_dl) + len(data.valid_dl)
    ratio = {k: statistics.median(own / hand for hand, own, *_ in ts) for k, ts in times.items()}
    extra = lambda k, base: 1e6 * statistics.median(a[1] - b[1] for a, b in zip(times[k], times[base])) / n   # the same rounds
    return dict(ratio_b=ratio['b'], ratio_br=ratio['br'], ratio_st=ratio['st'], st_over_b=ratio['st'] / ratio['b'],
                st_over_br=ratio['st'] / ratio['br'], extra_us_per_batch=extra('st', 'b'), extra_over_br_us=extra('st', 'br'),
                hand_us_per_batch=1e6 * statistics.median(t[0] for ts in times.values() for t in ts) / n, epochs=epochs)


def layouts(n: int = 100_000, chunk: int = 500) -> dict:
    "µs and bytes per batch of two layouts, each written by one WAL connection in transactions of `chunk` batches."
    loss, lr = np.random.rand(n).astype(np.float32), np.random.rand(n).astype(np.float32)
    ways = {'row per batch': ('CREATE TABLE b (fit INTEGER, i INTEGER, loss REAL, lr REAL, PRIMARY KEY (fit, i)) WITHOUT ROWID',
                              lambda c, s: c.executemany('INSERT INTO b VALUES (1, ?, ?, ?)', zip(range(s, s + chunk), loss[s:s + chunk].tolist(), lr[s:s + chunk].tolist()))),
            'float32 chunks': ('CREATE TABLE b (fit INTEGER, first INTEGER, loss BLOB, lr BLOB, PRIMARY KEY (fit, first))',
                               lambda c, s: c.execute('INSERT INTO b VALUES (1, ?, ?, ?)', (s, loss[s:s + chunk].tobytes(), lr[s:s + chunk].tobytes())))}
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, (schema, insert) in ways.items():
            path = Path(d)/f'{len(out)}.sqlite'
            c = sqlite3.connect(path, isolation_level=None)
            c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA synchronous=NORMAL'); c.execute(schema)
            t = time.perf_counter()
            for s in range(0, n, chunk): c.execute('BEGIN IMMEDIATE'); insert(c, s); c.execute('COMMIT')
            t = time.perf_counter() - t
            c.close()
            out[name] = dict(us_per_batch=1e6 * t / n, bytes_per_batch=path.stat().st_size / n)
    return out


def report(name: str, res: dict) -> str:
    lines = [f"## {name}: {WORKLOADS[name].describe}", '']
    if 'instructions' in res:
        i = res['instructions']
        lines.append(f"instructions per batch: (a) {i['per_batch']['a']/1e3:,.1f} k, (b) {i['per_batch']['b']/1e3:,.1f} k, "
                     f"(st) {i['per_batch']['st']/1e3:,.1f} k: (st) adds {i['st_over_b']:+,.0f} a batch = {100*i['st_over_b_ratio']:.3f}% of (a), "
                     f"and {i['st_fit_over_b']/1e6:,.2f} M once a fit")
    h, bps = res['hand_off'], res['batches_per_second']
    share = (h['take_us'] + h['write_us']) / (1e6 * EVERY)
    lines.append(f"a hand-off every {EVERY} s = {h['batches']} batches at {bps:,.0f} batches/s: {h['take_us']:.0f} µs on the fit's thread "
                 f"+ {h['write_us']:.0f} µs writing = {100*share:.3f}% of the time")
    k = res['hooks']
    lines.append(f"in the store's hooks on the fit's thread: {k['ms_per_fit']:.2f} ms a fit of one epoch ({k['fit_ms']:.0f} ms) = {100*k['share']:.2f}%")
    t = res['time']
    lines.append(f"time, paced ({t['epochs']} epochs): (b) {t['ratio_b']:.3f}, (st) {t['ratio_st']:.3f} of the hand-written loop "
                 f"({t['hand_us_per_batch']:.0f} µs a batch): (st)/(b) = {t['st_over_b']:.4f}, {t['extra_us_per_batch']:+.1f} µs a batch")
    if 'ratio_br' in t:
        lines.append(f"of which the record it persists: (br) = (b) + the `Recorder` (which the live plot needs too) {t['ratio_br']:.3f}; "
                     f"(st)/(br) = {t['st_over_br']:.4f}, {t['extra_over_br_us']:+.1f} µs a batch: what writing it to the store adds")
    b = res['bytes']
    lines.append(f"store: {b['per_batch']:.1f} bytes per training batch, {b['per_fit']/1e3:,.1f} KB per fit, {b['empty']/1e3:.1f} KB empty "
                 f"(a fit of 1 epoch: {b['one_epoch']/1e3:.1f} KB; of 9: {b['nine_epochs']/1e3:.1f} KB; {b['fits']} fits of {b['few_batches']} batches: {b['fits_bytes']/1e3:.1f} KB; "
                 f"{b['train_batches_per_epoch']} training batches an epoch)")
    return '\n'.join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='the quick sizes of loop_overhead.py and instructions.py, 3 timed epochs')
    ap.add_argument('--workload', choices=[*WORKLOADS, 'both'], default='both')
    ap.add_argument('--no-instructions', action='store_true', help='skip the valgrind counts')
    ap.add_argument('--json', default=None, help='also write the results as JSON to this path')
    ap.add_argument('--child-all', nargs='+', help=argparse.SUPPRESS)   # WORKLOAD N_TRAIN OUT_DIR KEY...: what callgrind runs
    a = ap.parse_args(argv)
    if a.child_all: return instructions.child(a.child_all[3:], int(a.child_all[1]), a.child_all[0], a.child_all[2])
    import torch
    torch.set_num_threads(1)
    out = dict(layouts=layouts())
    print('\n'.join(f"layout {k}: {v['us_per_batch']:.2f} µs and {v['bytes_per_batch']:.1f} bytes per batch" for k, v in out['layouts'].items()), '\n')
    for name in (WORKLOADS if a.workload == 'both' else [a.workload]):
        bps = batches_per_second(name, a.quick)
        res = out[name] = dict(batches_per_second=bps, hand_off=hand_off_seconds(max(1, round(bps * EVERY))),
                               bytes=store_bytes(name, a.quick), hooks=hook_seconds(name, a.quick), time=paced_times(name, a.quick, 3 if a.quick else 15))
        if not a.no_instructions and shutil.which('valgrind'): res['instructions'] = count_workload(name, a.quick)
        print(report(name, res), '\n', flush=True)
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1))
    print(f"store_overhead={max(out[n]['time']['st_over_b'] for n in out if n != 'layouts') - 1:.4f}")
    return out


if __name__ == '__main__':
    main()
