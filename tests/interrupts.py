"Ctrl-C at every line: run an action again and again, with a KeyboardInterrupt raised at its 1st, 2nd, ... line of the package's code."
import sys
from pathlib import Path
import callbacks_widget
from callbacks_widget.runner import Runner

PACKAGE = str(Path(callbacks_widget.__file__).parent)


def _tracer(at: int, count: list, within=None):
    "A `sys.settrace` function that counts the package's lines (inside calls of `within`, if given) and interrupts the `at`-th."
    target = getattr(within, '__code__', None)
    def local(frame, event, arg):
        if event == 'line' and (target is None or count[1]):
            count[0] += 1
            if count[0] == at: raise KeyboardInterrupt(f'at line {frame.f_lineno} of {frame.f_code.co_qualname}')
        elif event == 'return' and frame.f_code is target: count[1] -= 1
        return local
    def start(frame, event, arg):
        if frame.f_code is target: count[1] += 1
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None
    return start


def run_traced(action, at: int = 0, within=None) -> int:
    "Run `action()`, interrupting the `at`-th line of the package's code it runs (inside `within`); return the lines counted."
    count = [0, 0]
    sys.settrace(_tracer(at, count, within))
    try: action()
    finally: sys.settrace(None)
    return count[0]


def interrupt_every_line(make, action, check, within=None, every: int = 1) -> int:
    """For each line of the package's code that `action(state)` runs (inside calls of `within`): a fresh `state = make()`,
    `action(state)` interrupted at that line, then `check(state, where)`; only every `every`-th line where a path is
    too long for all. Return the number of lines."""
    n = run_traced(lambda: action(make()), within=within)
    assert n > 0, 'the action ran none of the package code'
    for at in range(1, n + 1, every):
        state = make()
        try: run_traced(lambda: action(state), at, within)
        except KeyboardInterrupt as e: where = str(e)
        else: where = 'nowhere: the action ran fewer lines this time'
        check(state, where)
    return n


def interrupt_every_line_of_a_fit(cb_funcs, learn, check, within) -> int:
    """`interrupt_every_line` of a fit: for each line of `within` that a fit runs, a fresh `Runner(cb_funcs=cb_funcs)`
    that has fit `learn` once, its next fit interrupted at that line, then `check(run, where)`. Return the number of lines."""
    def make():
        run = Runner(cb_funcs=cb_funcs)
        run.fit(1, learn)
        return run
    return interrupt_every_line(make, lambda run: run.fit(1, learn), check, within=within)
