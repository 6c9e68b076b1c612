"""Cost of one live-plot update (`LivePlotCallback.update()`) at history lengths 1k to 1M batches, with 20 fits overlaid in the compare view, and of a redraw with the smoothing changed at 1M batches.

For each length, a `Runner` with `AvgStatsCallback` and `LivePlotCallback` fits one small epoch
(so the figure has its metric traces and the panel has run), then `cb.history` is filled to the
length with `add_batch` + `flush`. Each timed update follows a few new batches (as in training, the
data changes between updates; an update with nothing new sends nothing) and 20 real training steps
(so the update finds the caches as training leaves them, not as the garbage collector's pass before
them would). Messages are recorded
through the widget comms of the figure (a `LiveFigure`: the points travel as binary columns in its
synced state) and of every panel widget with `record_messages`.

    python bench/plot_update.py [--quick] [--json PATH]

Last line: `max_bytes=<largest update in bytes>`.
"""
import argparse, contextlib, gc, io, json, statistics, sys, time, tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from loop_overhead import make_data, make_learner, record_tree  # noqa: E402
from callbacks_widget.learner import accuracy  # noqa: E402
from callbacks_widget.runner import Runner  # noqa: E402
from callbacks_widget.stats import AvgStatsCallback  # noqa: E402
from callbacks_widget.liveplot import LivePlotCallback  # noqa: E402
from messages import record_messages  # noqa: E402  (loop_overhead put tests/ on the path)

LENGTHS = (1_000, 10_000, 100_000, 1_000_000)


def live_runner():
    return Runner(cb_funcs=[partial(AvgStatsCallback, [accuracy]), LivePlotCallback])


def fill(h, n: int, rng) -> None:
    "Add training batches to history `h` until it holds `n` (a noisy decaying loss, a constant lr)."
    k = n - h.n_iter
    if k <= 0: return
    i = np.arange(h.n_iter, n)
    loss = (2.3 * np.exp(-i / 2e5) + 0.2 + 0.1 * rng.standard_normal(k)).tolist()
    for v in loss: h.add_batch(v, 0.5)
    h.flush()


def train_steps(learn, n: int) -> None:
    "`n` training steps of the workload (forward, backward, SGD step), as between two updates of a real fit."
    for _, (xb, yb) in zip(range(n), learn.data.train_dl):
        learn.loss_func(learn.model(xb), yb).backward()
        learn.opt.step(); learn.opt.zero_grad()


def time_updates(run, learn, reps: int, new_batches: int, rng) -> dict:
    "Time `reps` updates of the runner's live plot (after a warm-up), each after `new_batches` batches and 20 training steps."
    cb = run.live_plot
    fig_rec, panel_recs = record_messages(cb.fig), record_tree(cb.panel.widget)
    times, cpu_times, panel_times, fig_bytes, panel_bytes, n_msgs = [], [], [], [], [], []
    for r in range(reps + 1):
        fill(cb.history, cb.history.n_iter + new_batches, rng)      # flushed, like the training loop's pending values
        if r % 5 == 4: cb.history.add_epoch(r, valid_loss=0.3, train_accuracy=0.9, valid_accuracy=0.88)
        for rec in (fig_rec, *panel_recs): rec.messages.clear()
        gc.collect()
        train_steps(learn, 20)   # what runs between two updates in training leaves the caches as training does
        t, c = time.perf_counter(), time.thread_time()
        cb.update()
        dt, dc = time.perf_counter() - t, time.thread_time() - c
        t = time.perf_counter(); cb.panel.refresh(); dp = time.perf_counter() - t   # its share, timed on its own
        if r == 0: continue   # warm-up
        times.append(dt); cpu_times.append(dc); panel_times.append(dp)
        fig_bytes.append(sum(fig_rec.sizes)); panel_bytes.append(sum(sum(p.sizes) for p in panel_recs))
        n_msgs.append(len(fig_rec.messages) + sum(len(p.messages) for p in panel_recs))
    h = cb.history
    sizes = [f + p for f, p in zip(fig_bytes, panel_bytes)]
    return dict(n=h.n_iter, update_ms=1e3*statistics.median(times), update_min_ms=1e3*min(times),
                update_max_ms=1e3*max(times), update_cpu_ms=1e3*statistics.median(cpu_times), panel_ms=1e3*statistics.median(panel_times),
                bytes_median=statistics.median(sizes), bytes_max=max(sizes), fig_bytes_max=max(fig_bytes),
                panel_bytes_max=max(panel_bytes), messages_median=statistics.median(n_msgs),
                history_bytes_per_batch=h.nbytes / h.n_iter)


def bench_length(n: int, reps: int, data, learn) -> dict:
    new_batches = max(1, min(50, n // (4 * (reps + 1))))   # the last update sees exactly n batches
    run = live_runner()
    with contextlib.redirect_stdout(io.StringIO()): run.fit(1, learn)
    rng = np.random.default_rng(n)
    fill(run.live_plot.history, n - new_batches * (reps + 1), rng)
    return time_updates(run, learn, reps, new_batches, rng)


def bench_compare(reps: int, learn, fits: int = 20, batches: int = 5_000) -> dict:
    """Updates of the compare view with `fits` fits overlaid, the last one running: after one real fit, `fits - 1`
    fits of `batches` batches (a callback switched between each two, so each has its name), then timed updates."""
    run = live_runner()
    with contextlib.redirect_stdout(io.StringIO()): run.fit(1, learn)
    h, rng = run.live_plot.history, np.random.default_rng(fits)
    names = tuple(cb.name for cb in run.running)
    for f in range(fits - 1):
        h.begin_fit(names + (('gradient_clipping',) if f % 2 else ()))
        fill(h, h.n_iter + batches, rng)
        h.add_epoch(0, valid_loss=0.3, train_accuracy=0.9, valid_accuracy=0.88)
    run.live_plot.view = 'compare'
    res = time_updates(run, learn, reps, 50, rng)
    return dict(res, fits=fits, traces=len(run.live_plot.fig.traces),
                points_max=max(len(run.live_plot.fig.column(t['x'])) for t in run.live_plot.fig.traces))


def bench_smoothing(reps: int, learn, n: int = 1_000_000) -> dict:
    """A redraw with the smoothing changed (`run.live_plot.beta = b`, a new `b` each time: the smoothed curve recomputed from
    the record's `n` raw losses), then an update after 50 new batches at that `beta` (the smoothed curve extended)."""
    run = live_runner()
    with contextlib.redirect_stdout(io.StringIO()): run.fit(1, learn)
    cb, rng = run.live_plot, np.random.default_rng(n)
    fill(cb.history, n, rng)
    cb.update()
    rec = record_messages(cb.fig)
    changed, after, sizes = [], [], []
    for r in range(reps + 1):
        rec.messages.clear()
        gc.collect()
        train_steps(learn, 20)
        t = time.perf_counter(); cb.beta = 0.9 + r / (10 * (reps + 1)); dt = time.perf_counter() - t   # a new beta: drawn at once
        sizes.append(sum(rec.sizes))
        fill(cb.history, cb.history.n_iter + 50, rng)
        train_steps(learn, 20)
        t = time.perf_counter(); cb.update(); du = time.perf_counter() - t
        if r: changed.append(dt); after.append(du)   # the first is a warm-up
    return dict(n=n, changed_ms=1e3 * statistics.median(changed), changed_max_ms=1e3 * max(changed),
                after_ms=1e3 * statistics.median(after), bytes_max=max(sizes[1:]))


def smoothing_line(s: dict) -> str:
    return (f"\n\nSmoothing changed at {s['n']:,} batches (`run.live_plot.beta = b`, a new `b` each time, recomputed from the raw losses): "
            f"redraw {s['changed_ms']:.1f} ms (median; max {s['changed_max_ms']:.1f}), {s['bytes_max']:,} bytes at most; "
            f"the next update after 50 new batches {s['after_ms']:.2f} ms (median).")


def compare_table(c: dict) -> str:
    "The compare view's row, in the table's columns."
    return (f"\n\nCompare view, {c['fits']} fits overlaid ({c['n']:,} batches, {c['traces']} traces of at most {c['points_max']} points; "
            f"each update after 50 new batches of the running fit): update {c['update_ms']:.2f} ms (median; min {c['update_min_ms']:.2f}, "
            f"max {c['update_max_ms']:.2f}), {c['bytes_median']:,.0f} bytes sent (median), {c['bytes_max']:,} at most.")


def record_bytes(h) -> int:
    "Bytes of the history's per-epoch records (one dict per epoch, with its keys and values)."
    return sum(sys.getsizeof(d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items()) + 8 for d in h.epochs)


def repeated_fits(data, fits: int = 30) -> dict:
    """Memory kept per extra fit (tracemalloc) by a runner with the live plot, beyond the history's arrays and
    its one record per epoch. The history is first filled past `max_points`, so the traces' size no longer grows; the first
    `fits` fits fill caches (traitlets', numpy's), the next `fits` are measured."""
    learn, run = make_learner(data), live_runner()
    sink, h = io.StringIO(), run.live_plot.history
    def fit():
        with contextlib.redirect_stdout(sink): run.fit(1, learn)
        sink.seek(0); sink.truncate()
    fit()
    fill(h, 2 * run.live_plot.max_points, np.random.default_rng(0))
    tracemalloc.start()
    for _ in range(fits): fit()   # caches (traitlets', numpy's) fill during the first fits: not counted
    gc.collect()
    table = run.live_plot._epochs   # the figure's per-epoch columns: per-epoch records too
    m0, h0, n0, e0 = tracemalloc.get_traced_memory()[0], h.nbytes, h.n_iter, record_bytes(h) + table.nbytes
    for _ in range(fits): fit()
    gc.collect()
    m1, h1, n1, e1 = tracemalloc.get_traced_memory()[0], h.nbytes, h.n_iter, record_bytes(h) + table.nbytes
    tracemalloc.stop()
    grew = (m1 - m0) - (h1 - h0) - (e1 - e0)
    return dict(fits=fits, batches_per_fit=(n1 - n0) / fits, bytes_per_fit=grew / fits, record_bytes_per_fit=(e1 - e0) / fits,
                bytes_per_batch=grew / max(1, n1 - n0), history_bytes_per_batch=h1 / n1)


def table(rows: list) -> str:
    lines = ["| history (batches) | update ms (median) | min | max | CPU ms (median) | panel.refresh ms | bytes sent (median) | max bytes | of which panel | history bytes/batch |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['update_ms']:.2f} | {r['update_min_ms']:.2f} | {r['update_max_ms']:.2f} | "
                     f"{r['update_cpu_ms']:.2f} | {r['panel_ms']:.2f} | {r['bytes_median']:,.0f} | {r['bytes_max']:,} | {r['panel_bytes_max']:,} | "
                     f"{r['history_bytes_per_batch']:.1f} |")
    return '\n'.join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer repetitions, lengths up to 100k (CI)')
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--json', default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    reps = a.reps or (10 if a.quick else 30)
    lengths = LENGTHS[:3] if a.quick else LENGTHS
    data = make_data(640, 256)
    learn = make_learner(data)
    rows = [bench_length(n, reps, data, learn) for n in lengths]
    fits = repeated_fits(data, 20 if a.quick else 60)
    compare = bench_compare(reps, learn)
    smoothing = bench_smoothing(reps, learn, 100_000 if a.quick else 1_000_000)
    print(table(rows) + compare_table(compare) + smoothing_line(smoothing))
    print()
    print(f"Each update follows up to 50 new batches (an epoch every 5th) and 20 training steps; median of {reps} updates after a warm-up. After {fits['fits']} more fits of "
          f"{fits['batches_per_fit']:.0f} batches, memory grew by {fits['bytes_per_fit']:,.0f} bytes per fit "
          f"({fits['bytes_per_batch']:.1f} bytes per batch) beyond the history's arrays "
          f"({fits['history_bytes_per_batch']:.1f} bytes per batch) and its records of each epoch ({fits['record_bytes_per_fit']:,.0f} bytes per epoch).")
    res = dict(rows=rows, repeated_fits=fits, compare=compare, smoothing=smoothing, reps=reps,
               max_bytes=max(r['bytes_max'] for r in rows + [compare, smoothing]))
    if a.json:
        with open(a.json, 'w') as f: json.dump(res, f, indent=1)
    print(f"max_bytes={res['max_bytes']}")
    return res


if __name__ == '__main__':
    main()
