"The run store for real: a process killed mid-fit, two processes writing one store, DDP, and files only read."
import json, os, signal, socket, subprocess, sys, threading, time
from functools import partial
from pathlib import Path
import pytest, torch
from callbacks_widget.runner import Callback, Runner
from callbacks_widget.history import Recorder
from callbacks_widget.store import RunStore, StoreWriter, connect, load_runs, wait_for_writers

ROOT = Path(__file__).resolve().parents[1]
CHILD = [sys.executable, str(ROOT/'tests'/'store_child.py')]
ENV = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': ''}


def writers(path: Path) -> list: return [t for t in threading.enumerate() if isinstance(t, StoreWriter) and t.path == path]


def wait_ready(folder: Path, ps: list) -> None:
    "Wait until each child process of `ps` has said it is ready (a file `ready<pid>` in `folder`)."
    t0 = time.time()
    while len(list(folder.glob('ready*'))) < len(ps):
        assert time.time() - t0 < 120 and all(p.poll() is None for p in ps), 'the children ended or never got ready'
        time.sleep(0.01)


def files(folder: Path) -> dict: return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_process_killed_mid_fit_loses_at_most_the_last_second_and_leaves_a_store_that_reads(tmp_path):
    path, done = tmp_path/'runs.sqlite', []   # done: (training batches, time) the child printed
    p = subprocess.Popen([*CHILD, 'long', str(path)], stdout=subprocess.PIPE, text=True, env=ENV)
    reader = threading.Thread(target=lambda: done.extend(tuple(map(float, l.split())) for l in p.stdout), daemon=True)
    reader.start()
    try:
        t0 = time.time()
        while not (done and done[-1][0] >= 300 and time.time() - done[0][1] > 2.5):
            assert p.poll() is None and time.time() - t0 < 120, 'the child ended or never got going'
            time.sleep(0.05)
        killed = time.time()
        os.kill(p.pid, signal.SIGKILL)
    finally: p.kill(); p.wait()
    reader.join(5)
    before = max(n for n, t in done if t <= killed - 1.0)   # batches done a second before the kill
    fit, = load_runs(path)
    assert fit.status == 'ended without its end written (its process was killed)' and fit.ended is None
    assert before <= fit.n_batches <= done[-1][0] + 10, (before, fit.n_batches, done[-1])
    assert len(fit.record().loss) == fit.n_batches
    assert connect(path).execute('PRAGMA integrity_check').fetchone() == ('ok',)


def test_three_processes_making_the_same_new_store_at_once_all_get_it(tmp_path):
    "Each of 60 new files is opened to write by three processes at the same moment: none may see a half-made store as another program's, nor give up on SQLite's lock."
    n = 60
    ps = [subprocess.Popen([*CHILD, 'make', str(tmp_path), str(n)], env=ENV, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    wait_ready(tmp_path, ps)
    for i in range(n): (tmp_path/f'go{i}').touch(); time.sleep(0.02)
    out = [p.communicate(timeout=120)[0] for p in ps]
    assert [p.returncode for p in ps] == [0, 0, 0] and out == ['', '', ''], out
    for i in range(n): assert connect(tmp_path/f'{i}.sqlite').execute('PRAGMA journal_mode').fetchone() == ('wal',)


def test_two_processes_writing_one_store_at_once_both_keep_every_fit(tmp_path):
    path, go, n = tmp_path/'runs.sqlite', tmp_path/'go', 4
    ps = [subprocess.Popen([*CHILD, 'fits', str(path), str(go), str(n)], env=ENV, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    wait_ready(tmp_path, ps)
    go.touch()   # both start at once: they make the store together, then write it together
    for p in ps: assert p.wait(timeout=240) == 0, p.stderr.read()
    fits = load_runs(path)
    assert len(fits) == 2 * n and {f.status for f in fits} == {'finished'}
    assert {f.n_batches for f in fits} == {3 * 16} and len({f.pid for f in fits}) == 2
    assert all(len(f.record().epochs) == 3 for f in fits)
    spans = {pid: (min(f.started for f in fits if f.pid == pid), max(f.ended for f in fits if f.pid == pid)) for pid in {f.pid for f in fits}}
    (a0, a1), (b0, b1) = spans.values()
    assert a0 < b1 and b0 < a1, f'the processes did not write at the same time: {spans}'


@pytest.mark.distributed
def test_under_ddp_only_rank_0_writes(tmp_path):
    path = tmp_path/'runs.sqlite'
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1', f'--master_port={port}',
           str(ROOT/'tests'/'store_child.py'), 'ddp', str(path), str(tmp_path)]
    p = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path/f'rank{r}.json').read_text()) for r in (0, 1))
    assert 'run_store' in r0['running'] and 'run_store' not in r1['running']
    fit, = load_runs(path)
    assert (fit.pid, fit.status, fit.n_batches) == (r0['pid'], 'finished', 8)


def test_reading_a_store_never_changes_it(tmp_path):
    path = tmp_path/'runs.sqlite'
    Runner(cbs=[RunStore(path)]).fit(1, make_learner())
    wait_for_writers(path)
    before = files(tmp_path)
    fits = load_runs(path); fits[0].record(); fits[0].to_csv(tmp_path/'fit.csv')
    (tmp_path/'fit.csv').unlink()
    after = files(tmp_path)
    assert all(after.get(f) == before.get(f) for f in ('runs.sqlite', 'runs.sqlite-wal')) and 'runs.sqlite' in after
    assert set(after) - set(before) <= {'runs.sqlite-shm'}   # SQLite's index of the log, which a reader of a WAL database may make


@pytest.mark.parametrize('content', [b'', b'hello', b'SQLite format 3\x00' + bytes(200)])
def test_load_runs_names_a_file_that_is_no_store_and_leaves_it_as_it_was(tmp_path, content):
    path = tmp_path/'x.sqlite'
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)): load_runs(path)
    assert files(tmp_path) == {'x.sqlite': content}
    with pytest.raises(FileNotFoundError, match=str(tmp_path/'y.sqlite')): load_runs(tmp_path/'y.sqlite')


def make_learner():
    sys.path.insert(0, str(ROOT/'tests'))
    from store_child import make_learner
    return make_learner(256)


@pytest.mark.parametrize('where', ['hand_off', 'release', 'begin'])
def test_ctrl_c_in_the_store_ends_the_fit_and_the_next_fit_is_stored_by_the_one_writer(tmp_path, monkeypatch, where):
    path, learn = tmp_path/'runs.sqlite', make_learner()
    run = Runner(cbs=[RunStore(path)])
    cls, name = {'hand_off': (RunStore, 'hand_off'), 'release': (StoreWriter, 'release'), 'begin': (StoreWriter, 'start')}[where]
    original = getattr(cls, name)
    def interrupted(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if where != 'hand_off' or kwargs.get('end'): raise KeyboardInterrupt
    monkeypatch.setattr(cls, name, interrupted)
    with pytest.raises(KeyboardInterrupt): run.fit(1, learn)
    monkeypatch.undo()
    wait_for_writers(path)
    assert [f.status for f in load_runs(path)] == ([] if where == 'begin' else ['finished'])   # its end was handed over before the Ctrl-C
    run.fit(1, learn)
    w, = writers(path)
    assert load_runs(path)[-1].status == 'finished' and w.fits == 0 and w.is_alive()


def test_thousands_of_fits_share_one_writer_and_one_connection(tmp_path):
    path, learn = tmp_path/'runs.sqlite', make_learner()
    fds = lambda: len(os.listdir('/proc/self/fd'))
    Runner(cbs=[RunStore(path)]).fit(1, learn)
    before = fds()
    for _ in range(40): Runner(cbs=[RunStore(path)]).fit(1, learn)   # a new runner and store each time, as a notebook cell run again
    wait_for_writers(path)
    assert len(writers(path)) == 1 and fds() == before
    assert [f.status for f in load_runs(path)] == ['finished'] * 41


def test_a_process_that_ends_right_after_its_fit_keeps_the_fit(tmp_path):
    path = tmp_path/'runs.sqlite'
    subprocess.run([*CHILD, 'exit', str(path)], env=ENV, check=True, timeout=120)
    fit, = load_runs(path)
    assert (fit.status, fit.n_batches) == ('finished', 64)


def test_a_store_that_cannot_be_written_warns_at_the_fit_end_and_training_goes_on(tmp_path, monkeypatch):
    def full(self, rows): raise OSError('disk full')
    monkeypatch.setattr(StoreWriter, 'write', full)
    path = tmp_path/'runs.sqlite'
    run = Runner(cbs=[RunStore(path)])
    for k in (1, 2):   # each fit says it once
        with pytest.warns(UserWarning, match="could not write to .*runs.sqlite: OSError: disk full; the fit's record is in memory only") as said:
            run.fit(1, make_learner())
            wait_for_writers(path)
        assert len([w for w in said if 'disk full' in str(w.message)]) == 1
    assert len(run.recorder.history.loss) == 16 and len(writers(path)) == 1
    assert [f.n_batches for f in load_runs(path)] == [0, 0]   # their rows went in; their batches could not
