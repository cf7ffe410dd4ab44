"""What a check is, what it returns, and how a set of checks runs (concurrently, time-boxed).

A check is a small named function over the :class:`~storagectl.inventory.Topology`; it derives
every endpoint from the topology, probes it and returns one or more :class:`CheckResult`. It
knows no terminal: the report module renders the results.

Two shapes exist, both declared with a decorator that returns a :class:`Check`:

* :func:`cluster_check` - ``func(topology, ctx)`` runs once for the whole component
  (leader agreement, registration of every volume server);
* :func:`host_check` - ``func(topology, host, ctx)`` runs once per host of a component group
  in scope of ``--limit``; each host is its own task, so hosts are probed concurrently and a
  timeout names the endpoint that hung.

:func:`run_checks` runs every task of every check in a pool of daemon threads, each task with a
hard wall-clock bound: a check that raises or outlives ``--timeout`` becomes a failed result,
never a traceback and never a hung ``verify``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, wait
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from storagectl.inventory import Host, Topology, VariableError

__all__ = [
    "DEFAULT_TIMEOUT",
    "Check",
    "CheckContext",
    "CheckResult",
    "Findings",
    "Task",
    "cluster_check",
    "host_check",
    "parallel_map",
    "run_checks",
    "unit_fix",
]

DEFAULT_TIMEOUT = 20.0
"""Seconds one check task may take before it is reported as timed out."""

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass
class CheckResult:
    """The outcome of one probe.

    ``fix`` is one sentence telling the operator what to look at when ``ok`` is false (or a
    warning is raised); ``endpoint`` is what was probed (a URL, ``host:port``, or ``cluster``);
    ``host`` the inventory host it concerns, when there is one. ``warning`` marks a passing
    result that needs attention before it fails (capacity running low): it does not fail verify.
    """

    name: str
    component: str
    ok: bool
    detail: str
    fix: str = ""
    endpoint: str = ""
    duration: float = 0.0
    host: str = ""
    warning: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of every field (duration rounded to milliseconds)."""
        data = asdict(self)
        data["duration"] = round(self.duration, 3)
        return data


@dataclass
class Findings:
    """What one check found wrong: the problems in order, and the fixes for them, each fix once
    (several problems often share a cause)."""

    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    def add(self, problem: str, fix: str) -> None:
        self.problems.append(problem)
        if fix not in self.fixes:
            self.fixes.append(fix)

    @property
    def detail(self) -> str:
        """The problems as one detail."""
        return "; ".join(self.problems)

    @property
    def fix(self) -> str:
        """The fixes as one fix."""
        return " ".join(self.fixes)


@dataclass(frozen=True)
class CheckContext:
    """Run-wide settings handed to every check.

    ``timeout`` is the budget of one task; HTTP calls use :attr:`http_timeout`, a little below
    it, so a check normally reports a slow endpoint itself before the runner gives up on it.
    """

    timeout: float = DEFAULT_TIMEOUT

    @property
    def http_timeout(self) -> tuple[float, float]:
        """``(connect, read)`` timeouts for one HTTP request."""
        connect = max(0.5, min(3.0, self.timeout / 4))
        read = max(1.0, self.timeout * 0.6)
        return connect, read


@dataclass(frozen=True)
class Task:
    """One unit of concurrent work: a check applied to the cluster or to one host."""

    check: str
    component: str
    endpoint: str
    host: str
    run: Callable[[], CheckResult | Iterable[CheckResult]] = field(repr=False)


ClusterFunc = Callable[[Topology, CheckContext], CheckResult | Iterable[CheckResult]]
HostFunc = Callable[[Topology, Host, CheckContext], CheckResult | Iterable[CheckResult]]
EndpointFunc = Callable[[Topology, Host], str]


@dataclass(frozen=True)
class Check:
    """A named check of a component, expandable into tasks over a topology.

    ``requires`` lists the component groups (logical names such as ``seaweedfs_filer``) that
    must have hosts for the check to apply; an inventory without them yields no task, so an
    inventory that does not deploy a component is not failed by that component's checks.
    """

    name: str
    component: str
    description: str
    requires: tuple[str, ...]
    cluster_func: ClusterFunc | None = field(default=None, repr=False)
    host_func: HostFunc | None = field(default=None, repr=False)
    per_host: str | None = None
    endpoint: EndpointFunc | None = field(default=None, repr=False)

    def applies(self, topology: Topology) -> bool:
        """Whether every required group has at least one host in scope."""
        try:
            return all(topology.targets(group) for group in self.requires)
        except VariableError:
            return True  # let the task report the unresolvable group name

    def tasks(self, topology: Topology, ctx: CheckContext) -> list[Task]:
        """The tasks this check runs on ``topology`` (never raises)."""
        if not self.applies(topology):
            return []
        if self.cluster_func is not None:
            func = self.cluster_func
            return [
                Task(self.name, self.component, "cluster", "", lambda: func(topology, ctx)),
            ]
        if self.host_func is None or self.per_host is None:
            raise TypeError(f"check {self.name} has neither a cluster nor a host function")
        try:
            hosts = topology.targets(self.per_host)
        except VariableError as exc:
            return [Task(self.name, self.component, "inventory", "", _raiser(exc))]
        return [self._host_task(topology, host, ctx) for host in hosts]

    def _host_task(self, topology: Topology, host: Host, ctx: CheckContext) -> Task:
        host_func = self.host_func
        if host_func is None:
            raise TypeError(f"check {self.name} is not a host check")
        try:
            endpoint = self.endpoint(topology, host) if self.endpoint else host.name
        except VariableError:
            endpoint = host.name  # the task itself will report the unresolvable variable
        return Task(
            self.name, self.component, endpoint, host.name, lambda: host_func(topology, host, ctx)
        )

    def __call__(self, topology: Topology, ctx: CheckContext | None = None) -> list[CheckResult]:
        """Run this check alone (concurrently over its hosts) and return its results."""
        context = ctx or CheckContext()
        return run_checks(topology, [self], timeout=context.timeout)


def _first_doc_line(func: Callable[..., Any]) -> str:
    lines = (func.__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def _raiser(exc: BaseException) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        raise exc

    return run


def unit_fix(host: Host, unit: str, reason: str = "", *, what: str = "") -> str:
    """A fix sentence pointing at ``unit``'s status and journal on ``host``, after ``reason``
    when there is one (``what`` names the service in the bare form: "Look at Redis on ...")."""
    look = f"on {host.name}: systemctl status {unit}; journalctl -u {unit} -n 100."
    if not reason:
        return f"Look at {what} {look}" if what else f"Look {look}"
    return f"{reason[0].upper()}{reason[1:]}; look {look}"


def cluster_check(
    name: str, component: str, *, requires: Sequence[str] = (), description: str = ""
) -> Callable[[ClusterFunc], Check]:
    """Declare ``func(topology, ctx)`` as a check run once for the whole component."""

    def wrap(func: ClusterFunc) -> Check:
        return Check(
            name=name,
            component=component,
            description=description or _first_doc_line(func),
            requires=tuple(requires),
            cluster_func=func,
        )

    return wrap


def host_check(
    name: str,
    component: str,
    *,
    group: str,
    endpoint: EndpointFunc | None = None,
    requires: Sequence[str] = (),
    description: str = "",
) -> Callable[[HostFunc], Check]:
    """Declare ``func(topology, host, ctx)`` as a check run once per host of ``group``.

    ``group`` is the inventory group whose hosts it checks;
    ``endpoint(topology, host)`` names what the task probes, for reports and timeouts.
    """

    def wrap(func: HostFunc) -> Check:
        return Check(
            name=name,
            component=component,
            description=description or _first_doc_line(func),
            requires=tuple(requires) or (group,),
            host_func=func,
            per_host=group,
            endpoint=endpoint,
        )

    return wrap


def parallel_map(
    func: Callable[[_T], _R], items: Sequence[_T], *, max_workers: int = 8
) -> list[_R]:
    """``[func(i) for i in items]`` run concurrently (for probing every member of a cluster)."""
    if len(items) <= 1:
        return [func(i) for i in items]
    pool = _DaemonPool(min(max_workers, len(items)))  # daemon threads: see _DaemonPool
    try:
        futures = [pool.submit(lambda item=item: func(item)) for item in items]
        return [future.result() for future in futures]
    finally:
        pool.shutdown()


def _fix_for(exc: BaseException, task: Task) -> str:
    if isinstance(exc, VariableError):
        return "Define the variable in the inventory (group_vars/host_vars or vault) and rerun."
    where = task.endpoint if task.endpoint not in ("", "cluster") else task.component
    return f"Unexpected error while checking {where}; probe it by hand and check its service logs."


def _error_result(task: Task, exc: BaseException, duration: float) -> CheckResult:
    message = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, VariableError):
        message = f"{type(exc).__name__}: {message}"
    return CheckResult(
        name=task.check,
        component=task.component,
        ok=False,
        detail=message.splitlines()[0],
        fix=_fix_for(exc, task),
        endpoint=task.endpoint,
        duration=duration,
        host=task.host,
    )


def _timeout_result(task: Task, timeout: float) -> CheckResult:
    target = (
        task.endpoint if task.endpoint not in ("", "cluster") else f"the {task.component} cluster"
    )
    return CheckResult(
        name=task.check,
        component=task.component,
        ok=False,
        detail=f"timed out after {timeout:g} s waiting for {target}",
        fix=(
            f"Check that {target} is reachable from this machine (firewall, routing, service up) "
            "or raise --timeout."
        ),
        endpoint=task.endpoint,
        duration=timeout,
        host=task.host,
    )


def _normalise(
    task: Task, produced: CheckResult | Iterable[CheckResult], duration: float
) -> list[CheckResult]:
    results = [produced] if isinstance(produced, CheckResult) else list(produced)
    if not results:
        return []
    for result in results:
        if not result.duration:
            result.duration = duration
        if not result.endpoint:
            result.endpoint = task.endpoint
        if not result.host:
            result.host = task.host
    return results


class _DaemonPool:
    """A minimal thread pool of *daemon* workers.

    :class:`~concurrent.futures.ThreadPoolExecutor` joins its workers at interpreter exit, so one
    check stuck in a call without a timeout would keep ``verify`` alive after it has reported.
    Python cannot kill a thread; daemon threads are simply dropped when the process exits.
    :meth:`replace_worker` starts a fresh worker for one that is abandoned on a timeout, so a
    hung check does not shrink the pool and delay the tasks queued behind it.
    """

    def __init__(self, workers: int) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._workers = 0
        for _ in range(max(1, workers)):
            self.replace_worker()

    def replace_worker(self) -> None:
        """Start one more worker thread."""
        self._workers += 1
        threading.Thread(target=self._work, name=f"check-{self._workers}", daemon=True).start()

    def submit(self, func: Callable[[], _R]) -> Future[_R]:
        future: Future[_R] = Future()
        self._queue.put((future, func))
        return future

    def shutdown(self) -> None:
        """Let every idle worker end; a worker still busy ends with its task (or the process)."""
        for _ in range(self._workers):
            self._queue.put(None)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, func = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(func())
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)


def run_checks(
    topology: Topology,
    checks: Iterable[Check],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_workers: int = 16,
) -> list[CheckResult]:
    """Run ``checks`` concurrently over ``topology``; results come back in declaration order.

    Each task (a cluster check, or a host check on one host) has ``timeout`` seconds from the
    moment it starts, a hard bound: a task that raises becomes a failed result naming the
    exception; a task that overruns becomes a failed result "timed out after N s" naming its
    endpoint, its (daemon) thread is abandoned and a new worker takes its place. The run
    therefore ends at most about ``timeout`` after the last task started.
    """
    ctx = CheckContext(timeout=timeout)
    tasks = [task for check in checks for task in check.tasks(topology, ctx)]
    if not tasks:
        return []
    started: dict[int, float] = {}
    finished: dict[int, float] = {}

    def execute(index: int) -> CheckResult | Iterable[CheckResult]:
        started[index] = time.monotonic()
        try:
            produced = tasks[index].run()
            # Materialise generators inside the worker, so their probes are time-boxed too.
            return produced if isinstance(produced, CheckResult) else list(produced)
        finally:
            finished[index] = time.monotonic()

    outcome: dict[int, list[CheckResult]] = {}
    pool = _DaemonPool(min(max_workers, len(tasks)))
    try:
        futures: dict[Future[CheckResult | Iterable[CheckResult]], int] = {
            pool.submit(lambda i=i: execute(i)): i for i in range(len(tasks))
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.05)
            for future in done:
                index = futures[future]
                elapsed = finished.get(index, time.monotonic()) - started.get(
                    index, time.monotonic()
                )
                try:
                    outcome[index] = _normalise(tasks[index], future.result(), elapsed)
                except Exception as exc:  # a check must never crash verify
                    outcome[index] = [_error_result(tasks[index], exc, elapsed)]
            now = time.monotonic()
            for future in list(pending):
                index = futures[future]
                if index in started and index not in finished and now - started[index] > timeout:
                    pending.discard(future)
                    outcome[index] = [_timeout_result(tasks[index], timeout)]
                    pool.replace_worker()
    finally:
        pool.shutdown()
    return [result for i in range(len(tasks)) for result in outcome.get(i, [])]
