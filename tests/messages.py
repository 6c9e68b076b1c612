"""Test tooling: what a widget sends, recorded instead of sent; a live plot given to a runner."""
import json
import ipywidgets as widgets
from comm.base_comm import BaseComm
from callbacks_widget.runner import Runner


class MessageRecorder(BaseComm):
    """A widget comm that records the messages it is asked to send, with their size in bytes; with `keep=False`
    it only counts them (`count`, `nbytes`): kept messages would pile up for Python's garbage collector."""
    def __init__(self, keep: bool = True, **kwargs):
        self.messages, self.keep, self.count, self.nbytes = [], keep, 0, 0
        self._dumps = json.dumps  # kept: widgets still send while Python shuts down
        super().__init__(**kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        nbytes = len(self._dumps(data, default=str)) + sum(memoryview(b).nbytes for b in buffers or [])
        self.count, self.nbytes = self.count + 1, self.nbytes + nbytes
        if self.keep: self.messages.append(dict(msg_type=msg_type, data=data, nbytes=nbytes))

    @property
    def sizes(self) -> list: return [m['nbytes'] for m in self.messages]


def record_messages(widget: widgets.Widget, keep: bool = True) -> MessageRecorder:
    "Make `widget` send its messages into a `MessageRecorder` (that only counts them unless `keep`), and return it."
    widget.comm = MessageRecorder(keep=keep, comm_id=widget.model_id, target_name='jupyter.widget', primary=False)
    return widget.comm


def attached(live_plot):
    "`live_plot`, given to a runner of its own (with the `Recorder` it draws), for tests that fill the record by hand."
    Runner(cbs=live_plot)
    return live_plot
