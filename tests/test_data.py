"Data: the embedded MNIST sample, the lesson's MNIST loader (safe unpickling, checked downloads through a cache), loaders."
import gzip, hashlib, http.server, os, pickle, struct, subprocess, threading, urllib.request
import numpy as np, pytest, torch
from callbacks_widget.all import *
from callbacks_widget import data as data_module


def write_pickle(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with gzip.open(path, 'wb') as f: pickle.dump(obj, f, protocol=protocol)
    return path


@pytest.fixture
def mnist_file(tmp_path):
    "A small file in the format of the lesson's mnist.pkl.gz."
    rng = np.random.default_rng(0)
    parts = [(rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)) for n in (40, 12, 12)]
    return write_pickle(tmp_path / 'mnist.pkl.gz', parts), parts


def test_embedded_digits_look_like_mnist():
    x_train, y_train, x_valid, y_valid = get_data()
    assert x_train.shape == (24_000, 784) and x_valid.shape == (1_000, 784)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert 0 <= float(x_train.min()) and float(x_train.max()) <= 1
    assert 0.10 < float(x_valid.mean()) < 0.16  # MNIST's mean grey level is 0.13
    assert torch.equal(get_data()[3], y_valid)  # the split is fixed
    trained = {row.numpy().tobytes() for row in x_train[:4000]}
    assert not any(row.numpy().tobytes() in trained for row in x_valid)  # no validation image is trained on
    assert torch.bincount(y_valid).min() >= 80


def test_mnist_from_path(mnist_file):
    path, parts = mnist_file
    x_train, y_train, x_valid, y_valid = get_data(path)
    assert torch.equal(x_train, torch.from_numpy(parts[0][0])) and torch.equal(y_valid, torch.from_numpy(parts[1][1]))


def test_mnist_from_url_is_cached(mnist_file, tmp_path):
    path, parts = mnist_file
    cache = tmp_path / 'cache'
    x1 = get_mnist(url=path.as_uri(), cache_dir=cache)[0]
    path.unlink()  # the source is gone: the cached copy serves
    x2 = get_mnist(url=path.as_uri(), cache_dir=cache)[0]
    assert torch.equal(x1, x2) and (cache / 'mnist.pkl.gz').exists()
    assert not list(cache.glob('*.part'))


def test_mnist_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match='no MNIST pickle at'):
        get_mnist(tmp_path / 'nope.pkl.gz')
    bad = tmp_path / 'bad.pkl.gz'
    bad.write_bytes(b'not gzip')
    with pytest.raises(ValueError, match="is not the lesson's mnist.pkl.gz"):
        get_mnist(bad)
    with pytest.raises(OSError, match='could not download'):
        get_mnist(url=(tmp_path / 'missing.pkl.gz').as_uri(), cache_dir=tmp_path / 'c')
    assert not list((tmp_path / 'c').iterdir())


@pytest.mark.parametrize('obj, got', [((1, 2, 3), 'tuple(int, int, int)'),
                                      ([np.zeros((2, 784))] * 3, 'list(array(2, 784) of float64, '),
                                      (((np.zeros((2, 3)), np.zeros(3, np.int64)),) * 3, 'tuple(tuple(array(2, 3) of float64, array(3,) of int64), ')])
def test_a_wrong_structure_names_the_file_and_the_layout(tmp_path, obj, got):
    path = write_pickle(tmp_path / 'wrong.pkl.gz', obj)
    with pytest.raises(ValueError) as e: get_mnist(path)
    msg = str(e.value)
    assert f"{path} does not hold the lesson's MNIST: expected ((x_train, y_train), (x_valid, y_valid), (x_test, y_test))" in msg
    assert f'got {got}' in msg


# Crafted pickles: each would create `marker` when loaded by `pickle.load`.
class Reduce:
    def __init__(self, fn, *args): self.fn, self.args = fn, args
    def __reduce__(self): return self.fn, self.args

CRAFTED = {
    'os.system': lambda m: Reduce(os.system, f'touch {m}'),
    'builtins.eval': lambda m: Reduce(eval, f'open({str(m)!r}, "w").close()'),
    'subprocess.check_call': lambda m: Reduce(subprocess.check_call, ['touch', str(m)]),
    'subprocess.Popen': lambda m: Reduce(subprocess.Popen, ['touch', str(m)]),
}

@pytest.mark.parametrize('name', CRAFTED)
@pytest.mark.parametrize('protocol', [0, 2, 5])
def test_crafted_pickles_are_refused_and_run_nothing(tmp_path, name, protocol):
    marker = tmp_path / 'pwned'
    x, y = np.zeros((2, 784), np.float32), np.zeros(2, np.int64)
    path = write_pickle(tmp_path / 'mnist.pkl.gz', ((x, CRAFTED[name](marker)), (x, y), (x, y)), protocol)
    if name != 'subprocess.Popen':  # the file is a real attack: plain pickle.load runs it
        with gzip.open(path) as f: pickle.load(f)
        assert marker.exists(); marker.unlink()
    with pytest.raises(ValueError) as e: get_mnist(path)
    fn = CRAFTED[name](marker).fn
    assert f"{path} is not the lesson's mnist.pkl.gz" in str(e.value)
    # protocols 0-2 write Python 2's names (__builtin__.eval, commands.check_call)
    assert (f"refused to load {fn.__module__}.{fn.__qualname__}:" if protocol >= 3 else f".{fn.__qualname__}:") in str(e.value)
    assert 'nothing in the file was run' in str(e.value)
    assert not marker.exists()


def py2_pickle(obj) -> bytes:
    "`obj` pickled as Python 2 and numpy 1.x wrote the lesson's file: protocol 2, bytes as str (BINSTRING), `numpy.core`."
    class Py2Pickler(pickle._Pickler):
        dispatch = pickle._Pickler.dispatch.copy()
        def save_str8(self, b):
            self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b if len(b) < 256 else pickle.BINSTRING + struct.pack('<i', len(b)) + b)
            self.memoize(b)
        dispatch[bytes] = save_str8
    import io
    f = io.BytesIO(); Py2Pickler(f, protocol=2).dump(obj)
    out = f.getvalue().replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    assert b'_codecs' not in out and b'numpy.core.multiarray\n_reconstruct' in out
    return out


def test_python2_and_numpy1_pickles_load(tmp_path):
    rng = np.random.default_rng(1)
    parts = tuple((rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)) for n in (30, 10, 10))
    path = tmp_path / 'mnist.pkl.gz'
    with gzip.open(path, 'wb') as f: f.write(py2_pickle(parts))
    with gzip.open(path) as f:
        with pytest.raises(UnicodeDecodeError): pickle.load(f)  # why the loader reads with encoding='latin-1'
    x_train, y_train, x_valid, y_valid = get_mnist(path)
    assert torch.equal(x_train, torch.from_numpy(parts[0][0])) and torch.equal(y_valid, torch.from_numpy(parts[1][1]))
    for protocol in range(2, 6):  # and what numpy 2 writes, with every protocol
        assert torch.equal(get_mnist(write_pickle(tmp_path / f'p{protocol}.pkl.gz', parts, protocol))[0], x_train)


class Server:
    "A local HTTP server: `files` maps a path to (body, announced length)."
    def __init__(self):
        files = self.files = {}
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body, announced = files[self.path]
                self.send_response(200); self.send_header('Content-Length', str(announced)); self.end_headers()
                self.wfile.write(body); self.close_connection = True
            def log_message(self, *args): pass
        self.httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
    def url(self, path): return f'http://127.0.0.1:{self.httpd.server_port}{path}'

@pytest.fixture
def server():
    s = Server(); yield s; s.httpd.shutdown(); s.httpd.server_close()


def test_download_checks_before_it_caches(server, mnist_file, tmp_path):
    body = mnist_file[0].read_bytes()
    md5 = {'md5': hashlib.md5(body).hexdigest()}
    server.files.update({'/mnist.pkl.gz': (body, len(body)), '/cut/mnist.pkl.gz': (body[:1000], len(body))})
    cache = tmp_path / 'cache'
    with pytest.raises(OSError, match=f'got 1,000 of the {len(body):,} bytes announced'):
        download(server.url('/cut/mnist.pkl.gz'), cache, md5)
    assert not list(cache.iterdir())  # a partial file never lands in the cache
    with pytest.raises(ValueError, match=r"the download of .* is not the expected file"):
        download(server.url('/mnist.pkl.gz'), cache, {'md5': '0' * 32})
    with pytest.raises(OSError, match='larger than max_bytes=100'):
        download(server.url('/mnist.pkl.gz'), cache, md5, max_bytes=100)
    assert not list(cache.iterdir())  # nor a wrong one
    path = download(server.url('/mnist.pkl.gz'), cache, md5)
    assert path == cache / 'mnist.pkl.gz' and path.read_bytes() == body and os.listdir(cache) == ['mnist.pkl.gz']
    assert torch.equal(get_mnist(path)[0], torch.from_numpy(mnist_file[1][0][0]))


def test_the_cached_lesson_file_is_checked_and_never_read_unchecked(mnist_file, tmp_path, monkeypatch):
    def no_network(*args, **kwargs): raise AssertionError('no download expected')
    monkeypatch.setattr(urllib.request, 'urlopen', no_network)
    cache = tmp_path / 'cache'; cache.mkdir()
    (cache / 'mnist.pkl.gz').write_bytes(mnist_file[0].read_bytes())  # not the published file
    with pytest.raises(ValueError, match=r'the cached .*mnist.pkl.gz \(delete it to download again\) is not the expected file'):
        get_mnist(cache_dir=cache)
    monkeypatch.setattr(data_module, 'MNIST_DIGESTS', {'md5': hashlib.md5((cache / 'mnist.pkl.gz').read_bytes()).hexdigest()})
    assert get_mnist(cache_dir=cache)[0].shape == (40, 784)  # a file that matches is used


def test_published_digests_are_the_lesson_files():
    assert MNIST_DIGESTS == {'git-sha1': '059aba0d982e20e2ac125a3a59d89c3c2cd8b28a', 'md5': 'a02cd19f81d51c426d7ca14024243ce9'}


def test_loaders_batch_whole_tensors():
    x, y = torch.arange(100.).view(50, 2), torch.arange(50)
    train_dl, valid_dl = get_dls(Dataset(x, y), Dataset(x, y), 8)
    seen = torch.cat([yb for _, yb in train_dl])
    assert sorted(seen.tolist()) == list(range(50))  # every item once per epoch, shuffled
    assert [len(yb) for _, yb in valid_dl] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([yb for _, yb in valid_dl]), y)
    data = DataBunch(train_dl, valid_dl, c=50)
    assert data.train_ds.x is x and data.c == 50


def test_loaders_pin_memory_where_cuda_is(monkeypatch):
    ds = Dataset(torch.zeros(4, 2), torch.zeros(4))
    assert [dl.pin_memory for dl in get_dls(ds, ds, 2)] == [torch.cuda.is_available()] * 2
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert [dl.pin_memory for dl in get_dls(ds, ds, 2)] == [True, True]
    assert [dl.pin_memory for dl in get_dls(ds, ds, 2, pin_memory=False)] == [False, False]  # explicit wins
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert [dl.pin_memory for dl in get_dls(ds, ds, 2)] == [False, False]
    assert get_dls(ds, ds, 2, pin_memory=True)[0].pin_memory is True
