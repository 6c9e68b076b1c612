"""How the live plot's picture is made: candidates timed on the same figure state at 1M batches and 1,000 fits.

The live plot leaves a PNG of its figure in the notebook after every fit (issue 23). This measures, on the figure
state a live plot holds after 1,000 fits of 1,000 batches (every trace at most `max_points` points, 200 fit lines,
7 fit labels), what each way of drawing it costs at a fit's end:

  * Pillow (what `LivePlotCallback.picture()` uses): `figure_png` draws the state and the panel's table;
  * matplotlib's Agg: the same traces, rows and legend drawn with matplotlib and saved as a PNG (a
    straightforward port, not tuned: what a picture through matplotlib would cost);
  * plotly's own export (kaleido) needs a Chrome and the browser's `Plotly.toImage` needs a view: neither can be
    the default in a kernel with no front end, so neither is timed here.

Each is timed `--reps` times after one warm-up (median, min, max), and its PNG's size is given; the installed size
of each library (its files in site-packages, with the packages only it brings) says what a user installs for it.

    python bench/picture.py [--reps N] [--json PATH]
"""
import argparse, base64, importlib.metadata as md, io, json, statistics, sys, time
from pathlib import Path

import numpy as np

from callbacks_widget.runner import Runner
from callbacks_widget.liveplot import LivePlotCallback


def live_plot(fits: int = 1000, batches: int = 1000) -> LivePlotCallback:
    "A live plot whose history holds `fits` fits of `batches` batches and an epoch each, drawn once."
    cb, rng = LivePlotCallback(), np.random.default_rng(0)
    Runner(cbs=cb)
    h = cb.history
    for k in range(fits):
        h.begin_fit(('train_eval', 'live_plot'))
        i = np.arange(batches)
        for v in (2.3 * np.exp(-(k * batches + i) / 2e5) + 0.2 + 0.1 * rng.random(batches)).tolist(): h.add_batch(v, 0.5)
        h.add_epoch(0, valid_loss=float(0.3 + 0.1 * rng.random()))
    cb.update()
    return cb


def matplotlib_png(fig, footer: list) -> bytes:
    "The figure state `fig` (a `LiveFigure`) drawn with matplotlib's Agg, panels by the layout's y domains."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    layout, traces = fig.plot_layout, fig.traces
    rows = sorted([k for k in layout if k.startswith('yaxis') and layout[k].get('visible', True)], key=lambda k: -layout[k]['domain'][1])
    heights = [layout[k]['domain'][1] - layout[k]['domain'][0] for k in rows]
    f, axes = plt.subplots(len(rows), 1, sharex=True, figsize=(9, (layout.get('height', 560) + 18 * len(footer)) / 100), dpi=100,
                           gridspec_kw=dict(height_ratios=heights))
    for ax, k in zip(np.atleast_1d(axes), rows):
        ax.set_facecolor('#E5ECF6'); ax.grid(color='white')
        ax.set_ylabel(layout[k].get('title', {}).get('text', ''))
        for t in traces:
            if 'y' + k[5:] != t.get('yaxis', 'y'): continue
            x, y = fig.column(t['x']), fig.column(t['y'])
            style = t.get('line') or {}
            if 'lines' in t.get('mode', 'lines'): ax.plot(x, y, lw=style.get('width', 2), label=t['name'])
            if 'markers' in t.get('mode', ''): ax.plot(x, y, 'o', ms=4)
    for s in layout.get('shapes', []):
        for v in s['path'].split('M')[1:]: np.atleast_1d(axes)[0].axvline(float(v.split(',')[0]), ls=':', c='#999', lw=1)
    f.legend(loc='upper left', ncol=6, fontsize=8, frameon=False)
    f.text(0.08, 0.01, '\n'.join('   '.join(r) for r in footer), fontsize=9, va='bottom')
    buf = io.BytesIO()
    f.savefig(buf, format='png')
    plt.close(f)
    return buf.getvalue()


def timed(make, reps: int) -> dict:
    make()   # warm-up: imports, fonts
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter(); out = make(); times.append(time.perf_counter() - t0)
    return dict(median_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times), max_ms=1e3 * max(times), png_bytes=len(out))


def installed_mb(*dists: str) -> float:
    "The size of the files of the distributions `dists` as installed, in MB."
    return sum(sum(p.locate().stat().st_size for p in (md.files(d) or []) if p.locate().exists()) for d in dists) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=15)
    ap.add_argument('--fits', type=int, default=1000)
    ap.add_argument('--json', type=Path)
    a = ap.parse_args()
    cb = live_plot(a.fits)
    footer = cb.panel.table()
    out = {'history': dict(batches=cb.history.n_iter, fits=len(cb.history.fit_starts)),
           'pillow': {**timed(lambda: base64.b64decode(cb.picture()['image/png']), a.reps),
                      'installed_mb': installed_mb('pillow')}}
    try:
        out['matplotlib'] = {**timed(lambda: matplotlib_png(cb.fig, footer), a.reps),
                             'installed_mb': installed_mb('matplotlib', 'contourpy', 'cycler', 'fonttools', 'kiwisolver', 'pyparsing',
                                                          'python-dateutil', 'six', 'pillow')}
    except ImportError: out['matplotlib'] = None   # pip install matplotlib (the bench extra) to measure it
    print(f"history: {out['history']['batches']:,} batches, {out['history']['fits']:,} fits")
    print('| candidate | median ms | min | max | PNG bytes | installed MB |\n|---|---:|---:|---:|---:|---:|')
    for name in ('pillow', 'matplotlib'):
        r = out[name]
        if r: print(f"| {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['max_ms']:.1f} | {r['png_bytes']:,} | {r['installed_mb']:.1f} |")
    if a.json: a.json.write_text(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
