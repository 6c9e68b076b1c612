"""Train the lesson's model on several processes with DDP: `torchrun --nproc_per_node=2 examples/ddp_train.py`.

Runs unchanged on CPUs (Gloo) and on GPUs (NCCL, one GPU per process). Every process trains on its
part of the data; rank 0 prints the stats and writes the live plot (HTML) and the history (CSV).
"""
import argparse, json, os
from functools import partial
from pathlib import Path
import torch
import torch.distributed as dist
import torch.nn.functional as F
from callbacks_widget.all import *


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--bs', type=int, default=64, help='batch size of each process')
    p.add_argument('--lr', type=float, default=0.5)
    p.add_argument('--n-train', type=int, default=None, help='train on the first N items only (quick runs)')
    p.add_argument('--out', default='ddp_output', help='folder for live_plot.html and history.csv (rank 0)')
    p.add_argument('--off', action='append', default=[], metavar='CALLBACK',
                   help='switch CALLBACK off on rank 0 before the fit, as its panel switch would; all ranks follow')
    p.add_argument('--report', default=None, metavar='DIR',
                   help='each rank writes its final weights (rank<R>.pt) and stats and switches (rank<R>.json) here')
    return p.parse_args(argv)


def init_process() -> None:
    "Join the process group: NCCL and this process's own GPU if there are GPUs, else Gloo on the CPU."
    if torch.cuda.is_available():
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
        torch.cuda.set_device(device)
        dist.init_process_group('nccl', device_id=device)  # NCCL bound to this process's GPU from the start
    else: dist.init_process_group('gloo')


def make_run(args) -> tuple:
    "The same `Runner` and `Learner` on every process (same seed: same initial weights)."
    torch.manual_seed(0)
    x_train, y_train, x_valid, y_valid = get_data()
    if args.n_train: x_train, y_train = x_train[:args.n_train], y_train[:args.n_train]
    data = DataBunch(*get_dls(Dataset(x_train, y_train), Dataset(x_valid, y_valid), args.bs,
                              pin_memory=torch.cuda.is_available()), c=10)
    learn = Learner(*get_model(data, lr=args.lr), F.cross_entropy, data)
    run = Runner(cb_funcs=[DeviceCallback, DistributedCallback, partial(AvgStatsCallback, accuracy), Recorder,
                           GradientClipping, LivePlotCallback])
    return run, learn


def report(run, learn, folder: Path) -> None:
    "Write this rank's final weights, its stats and its callbacks' switches, for checking."
    rank = dist.get_rank()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in learn.model.state_dict().items()}, folder/f'rank{rank}.pt')
    stats = lambda s: dict(names=s.names, avg_stats=s.avg_stats, count=s.count)
    info = dict(rank=rank, world_size=dist.get_world_size(), enabled={cb.name: cb.enabled for cb in run.cbs},
                running=[cb.name for cb in run.running], valid_stats=stats(run.avg_stats.valid_stats),
                train_stats=stats(run.avg_stats.train_stats), recorded_batches=run.recorder.history.n_iter,
                live_plot_points=len(run.live_plot.fig.column('batches/x')),
                train_batches=run.n_iter)
    (folder/f'rank{rank}.json').write_text(json.dumps(info, indent=1))


def main(argv=None) -> None:
    args = parse_args(argv)
    init_process()
    try:
        run, learn = make_run(args)
        unknown = set(args.off) - {cb.name for cb in run.cbs}
        if unknown: raise SystemExit(f"--off: no callback named {', '.join(sorted(unknown))}; there are {run}")
        if dist.get_rank() == 0:
            for name in args.off: getattr(run, name).enabled = False
        run.fit(args.epochs, learn)
        if dist.get_rank() == 0:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            html, csv = run.live_plot.save_html(out/'live_plot.html'), run.live_plot.history.to_csv(out/'history.csv')
            print(f"live plot: {html}\nhistory:   {csv}")
        if args.report: report(run, learn, Path(args.report))
        dist.barrier()   # no process ends its group while another is still in a collective
    finally: dist.destroy_process_group()


if __name__ == '__main__': main()
