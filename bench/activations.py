"""Per-batch cost of `ActivationStats` on the lesson's CNN (06: `get_learn_run`, `conv_layer`, batch 512), with and without the histogram.

Contestants, each a training epoch of the same runner setup (one torch thread, the embedded MNIST sample):
- `none`: no hook;
- `means`: the lesson's first hooks (`Hooks` with an `append_stats` that keeps means and stds): no histogram;
- `lesson_hist`: the lesson's `append_stats` with `histc(40, 0, 10)` and its `.cpu()` per batch and layer;
- `activation_stats`: `ActivationStats` (mean, std, share near zero and the 40-bin histogram).
They run in turns, round after round, so that a drift of the machine's speed touches all alike; each one's
time a batch is the median over the rounds. `panel` is what the panel's cost column showed for
`ActivationStats` (its `cb_seconds` a batch, hooks included), to set beside the measured difference.

    python bench/activations.py [--rounds N] [--json PATH]
"""
import argparse, json, statistics, time
from functools import partial
import torch
from callbacks_widget.data import get_data, Dataset, DataBunch, get_dls
from callbacks_widget.hooks import (BatchTransformXCallback, Hooks, append_stats, conv_layer, get_learn_run, normalize_to,
                                    view_tfm)
from callbacks_widget.activations import ActivationStats


def means_stds(hook, mod, inp, outp):
    "The lesson's first `append_stats`: means and stds, no histogram."
    if not hasattr(hook, 'stats'): hook.stats = ([], [])
    hook.stats[0].append(outp.data.mean()); hook.stats[1].append(outp.data.std())


def make_data(n_train: int, bs: int) -> DataBunch:
    x_train, y_train, x_valid, y_valid = get_data()
    x_train, x_valid = normalize_to(x_train[:n_train], x_valid[:bs])
    return DataBunch(*get_dls(Dataset(x_train, y_train[:n_train]), Dataset(x_valid, y_valid[:bs]), bs), 10)


def epoch_seconds(name: str, data: DataBunch) -> tuple:
    "Seconds a training batch of one epoch of contestant `name`, and the panel's cost a batch of `ActivationStats` (or None)."
    cbs = [partial(BatchTransformXCallback, view_tfm(1, 28, 28))] + ([ActivationStats] if name == 'activation_stats' else [])
    torch.manual_seed(0)
    learn, run = get_learn_run([8, 16, 32, 32], data, 0.4, conv_layer, cbs=cbs, leak=0.1, sub=0.4, maxv=6.)
    hooks = {'means': means_stds, 'lesson_hist': append_stats}.get(name)
    t = time.perf_counter()
    if hooks:
        with Hooks(learn.model[:4], hooks): run.fit(1, learn)
    else: run.fit(1, learn)
    n = len(data.train_dl)
    panel = run.cb_seconds['activation_stats'] / run.n_batches if name == 'activation_stats' else None
    return (time.perf_counter() - t) / n, panel


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--n-train', type=int, default=8 * 512)
    p.add_argument('--json')
    args = p.parse_args()
    torch.set_num_threads(1)
    data = make_data(args.n_train, 512)
    names = ['none', 'means', 'lesson_hist', 'activation_stats']
    times, panel = {n: [] for n in names}, []
    for r in range(args.rounds + 1):   # round 0 warms up
        for n in names:
            s, c = epoch_seconds(n, data)
            if r: times[n].append(s); panel += [c] if c is not None else []
    med = {n: statistics.median(v) for n, v in times.items()}
    out = {'batch_ms': {n: 1e3 * v for n, v in med.items()},
           'over_none_ms': {n: 1e3 * (v - med['none']) for n, v in med.items() if n != 'none'},
           'panel_ms': 1e3 * statistics.median(panel), 'rounds': args.rounds, 'batches_per_epoch': len(data.train_dl)}
    for n in names: print(f"{n:17s} {out['batch_ms'][n]:7.2f} ms a batch" + (f"  (+{out['over_none_ms'][n]:.2f} ms)" if n != 'none' else ''))
    print(f"panel's cost column for activation_stats: {out['panel_ms']:.2f} ms a batch")
    if args.json:
        with open(args.json, 'w') as f: json.dump(out, f, indent=1)


if __name__ == '__main__': main()
