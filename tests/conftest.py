import pytest, torch
import torch.nn.functional as F
from callbacks_widget.data import Dataset, DataBunch, get_dls  # not `.all`: tests/test_cuda.py runs without widget libraries
from callbacks_widget.learner import get_model, Learner


def pytest_configure(config):
    config.addinivalue_line('markers', 'browser: drives JupyterLab and Notebook 7 in Chromium (slow)')
    config.addinivalue_line('markers', 'distributed: launches several processes with torch.distributed')
    config.addinivalue_line('markers', "own_comm: reads a widget's messages through a comm of its own (ipywidgets >= 7.8: 7.7.1's "
                            "widgets send only through ipykernel's Comm, with a kernel)")


def make_learner(n_train=256, n_valid=64, bs=32, seed=0):
    "A small random classification problem of MNIST's width, for fast loop tests."
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n_train + n_valid, 784, generator=g), torch.randint(0, 10, (n_train + n_valid,), generator=g)
    torch.manual_seed(seed)
    data = DataBunch(*get_dls(Dataset(x[:n_train], y[:n_train]), Dataset(x[n_train:], y[n_train:]), bs), c=10)
    return Learner(*get_model(data), F.cross_entropy, data)


@pytest.fixture
def learn(): return make_learner()
