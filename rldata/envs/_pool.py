"""One worker-process pool: the workers of ParallelEnv and of the multi-process collectors.

Each worker process builds one *handler* object (an env server, a collector) and serves
its methods: the parent sends ``(method, args)`` over a pipe and reads back ``("ok",
result)`` or ``("error", ...)``. Big tensors never travel through the pipe; the handlers
exchange them through shared-memory TensorDicts that one side allocates once.

The rules every pool follows, and the Ray collector's actors too (Ray starts its own
processes, so only :func:`start_method` does not apply there):

- start method (:func:`start_method`): ``fork`` on Linux while CUDA is not initialised
  (fast, and lambdas work as env factories), otherwise ``spawn`` (factories must pickle);
- per worker (:func:`worker_init`): one torch thread, so ``W`` workers use ``W`` cores;
- errors: an exception a handler raises is raised again in the parent with its own
  class (``SpecError`` stays ``SpecError``), chained from a :class:`WorkerError` that
  carries the worker's traceback; the worker keeps serving. A worker that dies is a
  :class:`WorkerError` naming its exit code;
- lifecycle: ``close`` is the last method a handler serves; :meth:`WorkerPool.close`
  asks politely, then terminates, and also runs when the pool is garbage collected;
- seeding (:func:`chain_seeds`): worker ``w`` gets the seed that worker ``w - 1`` returned.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import traceback
import weakref
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import torch
import torch.multiprocessing as tmp  # registers tensor sharing with the pickler

from rldata.errors import ConfigError, RldataError

_START_METHODS = ("fork", "spawn", "forkserver")


class WorkerError(RldataError, RuntimeError):
    """A worker process failed or died; the message carries the worker's traceback."""


def start_method(requested: str | None = None) -> str:
    """The start method for worker processes: ``requested``, or the default rule above.

    Raises:
        ConfigError: ``requested`` is not a start method of this platform.
    """
    available = tmp.get_all_start_methods()
    if requested is not None:
        if requested not in _START_METHODS or requested not in available:
            raise ConfigError(f"mp_start_method must be one of {available}, got {requested!r}")
        return requested
    cuda_busy = torch.cuda.is_available() and torch.cuda.is_initialized()
    linux = sys.platform.startswith("linux")
    return "fork" if linux and "fork" in available and not cuda_busy else "spawn"


def worker_init() -> None:
    """What every worker process (and Ray actor) does first: one torch thread."""
    torch.set_num_threads(1)


def chain_seeds(seed_one: Callable[[int, int], int], n: int, seed: int, static: bool) -> int:
    """Seed ``n`` workers in turn; each gets the seed the previous one returned.

    Args:
        seed_one: ``seed_one(w, seed) -> next seed`` seeds worker ``w``.
        n: number of workers.
        seed: the first worker's seed.
        static: give every worker the same ``seed``.

    Returns:
        The seed after the last worker's (``seed`` itself when ``static``).
    """
    for w in range(n):
        nxt = seed_one(w, seed)
        seed = seed if static else nxt
    return seed


def _packed(err: BaseException) -> tuple[BaseException | None, str]:
    """The exception (when it pickles) and its traceback text, to send to the parent."""
    text = f"{type(err).__name__}: {err}\n{traceback.format_exc()}"
    try:
        pickle.dumps(err)
    except Exception:  # noqa: BLE001 - the text alone still tells what happened
        return None, text
    return err, text


def serve(conn: Connection, build: Callable[..., Any], args: tuple) -> None:
    """Worker process main: build the handler, then serve ``(method, args)`` until ``close``."""
    worker_init()
    try:
        handler = build(*args)
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", _packed(err)))
        conn.close()
        return
    conn.send(("ok", None))
    while True:
        try:
            method, margs = conn.recv()
        except (EOFError, OSError):
            break
        try:
            result = getattr(handler, method)(*margs)
        except BaseException as err:  # noqa: BLE001 - reported to the parent, which raises
            conn.send(("error", _packed(err)))
            continue
        conn.send(("ok", result))
        if method == "close":
            break
    conn.close()


def _shutdown(procs: list, conns: list[Connection]) -> None:
    for conn in conns:
        with contextlib.suppress(OSError, BrokenPipeError):
            conn.send(("close", ()))
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
    for conn in conns:
        conn.close()


class WorkerPool:
    """Worker processes, each serving the methods of one handler object.

    Args:
        name: what the workers are, for error messages (``"ParallelEnv"``).
        build: a module-level function (or class) run in each worker as ``build(*args[w])``;
            the handler it returns must have a ``close()`` method.
        args: one argument tuple per worker.
        mp_start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``; default
            :func:`start_method`.

    Raises:
        WorkerError: a worker died while starting; an exception raised by ``build`` is
            raised again with its own class.
    """

    def __init__(
        self,
        name: str,
        build: Callable[..., Any],
        args: Sequence[tuple],
        mp_start_method: str | None = None,
    ) -> None:
        self.name = name
        self.start_method = start_method(mp_start_method)
        ctx: Any = tmp.get_context(self.start_method)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self._finalizer = weakref.finalize(self, _shutdown, self.procs, self.conns)
        for worker_args in args:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=serve, args=(child, build, worker_args), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        try:
            self.gather(range(len(self.conns)))
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.conns)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def send(self, w: int, method: str, *args: Any) -> None:
        """Ask worker ``w`` to run ``method(*args)``; read the answer with :meth:`recv`."""
        self.conns[w].send((method, args))

    def recv(self, w: int) -> Any:
        """Worker ``w``'s answer to its oldest pending request."""
        try:
            kind, payload = self.conns[w].recv()
        except (EOFError, OSError):
            self.procs[w].join(timeout=5)  # the pipe closes just before the exit code is set
            code = self.procs[w].exitcode
            raise WorkerError(f"{self.name} worker {w} died (exit code {code})") from None
        if kind == "ok":
            return payload
        err, text = payload
        failure = WorkerError(f"{self.name} worker {w} failed: {text}")
        if err is None:
            raise failure
        raise err from failure

    def call(self, w: int, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` in worker ``w`` and return its result."""
        self.send(w, method, *args)
        return self.recv(w)

    def gather(self, workers: Iterable[int]) -> list[Any]:
        """Read one answer from each of ``workers``, all of them even if one failed."""
        results, errors = [], []
        for w in workers:
            try:
                results.append(self.recv(w))
            except Exception as err:  # noqa: BLE001 - re-raised below
                errors.append(err)
        if errors:
            raise errors[0]
        return results

    def call_all(self, method: str, *args: Any, workers: Iterable[int] | None = None) -> list:
        """Run ``method(*args)`` in every worker (or ``workers``) at once; their results."""
        ws = list(range(len(self.conns)) if workers is None else workers)
        for w in ws:
            self.send(w, method, *args)
        return self.gather(ws)

    def ready(self, workers: Iterable[int]) -> list[int]:
        """Those of ``workers`` whose answer can be read now (blocks until one can)."""
        index = {self.conns[w]: w for w in workers}
        return [index[cast(Connection, c)] for c in wait(list(index))]

    def close(self) -> None:
        """Close every handler (politely, then by force); idempotent."""
        self._finalizer()
