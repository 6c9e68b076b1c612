"Data: the embedded digits, the lesson's MNIST loader (from a path and a URL through a cache), loaders."
import gzip, pickle
import numpy as np, pytest, torch
from callbacks_widget.all import *


@pytest.fixture
def mnist_file(tmp_path):
    "A small file in the format of the lesson's mnist.pkl.gz."
    rng = np.random.default_rng(0)
    parts = [(rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)) for n in (40, 12, 12)]
    path = tmp_path / 'mnist.pkl.gz'
    with gzip.open(path, 'wb') as f: pickle.dump(parts, f)
    return path, parts


def test_embedded_digits_look_like_mnist():
    x_train, y_train, x_valid, y_valid = get_data()
    assert x_train.shape == (13_500, 784) and x_valid.shape == (297, 784)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert 0 <= float(x_train.min()) and float(x_train.max()) <= 1
    border = x_valid.view(-1, 28, 28)[:, :3, :]
    assert float(border.abs().max()) == 0  # digits are centred with an empty margin, as in MNIST
    assert torch.equal(get_data()[3], y_valid)  # the split is fixed


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
    assert not (tmp_path / 'c' / 'missing.pkl.gz').exists()


def test_loaders_batch_whole_tensors():
    x, y = torch.arange(100.).view(50, 2), torch.arange(50)
    train_dl, valid_dl = get_dls(Dataset(x, y), Dataset(x, y), 8)
    seen = torch.cat([yb for _, yb in train_dl])
    assert sorted(seen.tolist()) == list(range(50))  # every item once per epoch, shuffled
    assert [len(yb) for _, yb in valid_dl] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([yb for _, yb in valid_dl]), y)
    data = DataBunch(train_dl, valid_dl, c=50)
    assert data.train_ds.x is x and data.c == 50
