"""Run a runbook once per host with papermill; the runner, not the notebook, owns the status.

:func:`run_hosts` takes one YAML parameter file per host and, for each, executes the runbook
(``notebooks/01_azure_vm_imds.ipynb`` or ``notebooks/02_arc_himds.ipynb``) with those
parameters plus ``sidecar_path`` and ``host_name``. Per host, in ``out_dir/<host>/``:

=================  ===============================================================
``<host>.ipynb``   the executed notebook (saved after every cell, so partial on a kill)
``<host>.html``    HTML report without code (nbconvert ``--no-input`` equivalent)
``<host>.json``    the sidecar (:mod:`imds_helpers.fleet.sidecar`), with ``run`` added
``<host>.log``     stdout/stderr of the worker and its kernel (kernel warnings, crashes)
``<host>.evidence.json``  a live run's evidence bundle (render it again with ``evidence_path``)
=================  ===============================================================

Parameter files: see :func:`plan_hosts` (host name from ``host`` / ``host_name`` / the
file name; ``target: vm|arc`` picks the runbook for ``notebook="auto"``; unknown names and
bad values are refused before any kernel starts). A runbook checks the machine it runs on, so
a file naming another machine is refused unless it gives that machine's evidence
(``evidence_path``: a bundle from ``imds-runbook collect`` there, relative to the file's folder;
the report is then rendered from it) or is training (``emulator_scenario``).

Run status per host (``HostRun.status``):

ok           the notebook completed and its verdict is ok
findings     the notebook completed and its verdict is warn / fail (or skip: nothing proven)
failed       a cell raised (PapermillExecutionError), the sidecar is missing/unreadable,
             or anything else went wrong (kernel would not start, worker crashed)
timeout      a cell ran longer than ``cell_timeout`` (nbclient CellTimeoutError), or the
             whole host ran longer than ``host_timeout`` and was killed
dead_kernel  the kernel died mid-run (DeadKernelError: crash, ``os._exit``, OOM kill)

When the notebook left no sidecar, the runner writes a minimal one (no checks, verdict
``fail``) so that every host has exactly one result file.

How hosts run (the choice, and why):
    Each host runs in its own worker *process* (papermill's ``cwd`` handling is not
    thread-safe, and a hung kernel must be killable). Worker processes are forked from a
    ``multiprocessing`` forkserver that has pre-imported papermill and nbconvert once
    (importing them costs seconds per fresh interpreter), so a host costs a fork plus
    one kernel start. The parent is a single-threaded scheduler that keeps at most
    ``workers`` hosts running and enforces ``host_timeout`` as a wall-clock deadline
    per host: on expiry it kills the worker's process group *and* the kernel (which
    jupyter_client starts in a session of its own), found as the worker's descendants.
    (The kernel also exits by itself once its parent is gone: ipykernel polls
    ``JPY_PARENT_PID``.) Inside the worker, papermill runs with an explicit kernel name,
    ``cwd=out_dir/<host>``, ``execution_timeout=cell_timeout``, no progress bar and no
    output logging.

Bad input raises :class:`imds_helpers.model.errors.UsageError` before anything is written.
Importing this module is cheap (no papermill, no pandas); the workers import them.
"""

from __future__ import annotations

import ast
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from imds_helpers.runbooks.resources import data_dir
from imds_helpers.model.errors import UsageError
from imds_helpers.fleet.sidecar import (
    SidecarError,
    atomic_write_text,
    build_sidecar,
    check_host_name,
    local_host_name,
    now_iso,
    read_sidecar,
    run_status_for,
    write_sidecar,
)
from imds_helpers.model.validate import closest_name

NOTEBOOK_KINDS = ("vm", "arc", "auto")
NOTEBOOK_FILES = {"vm": "01_azure_vm_imds.ipynb", "arc": "02_arc_himds.ipynb"}
DEFAULT_NOTEBOOKS_DIR = data_dir("notebooks")
RUNNER_PARAMETERS = ("sidecar_path", "host_name")   # always set by the runner
# What `imds-runbook run` writes at the top of the results folder, beside one folder per host:
# one table, used to write them (run_cli) and to refuse host names that would collide with
# them (case-insensitively: macOS and Windows file systems are).
SUMMARY_FILES = {"csv": "summary.csv", "html": "summary.html", "md": "summary.md"}

MAX_WORKERS = 32
MAX_TIMEOUT_S = 24 * 3600.0
HTML_RENDER_TIMEOUT_S = 120.0

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Progress = Callable[["HostRun"], None]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HostRun:
    """One host's run, as the runner saw it."""

    host: str
    notebook: str                      # "vm" | "arc": which runbook ran
    status: str                        # ok | findings | failed | timeout | dead_kernel
    verdict: str                       # ok | warn | fail | skip (from the sidecar)
    tally: Mapping[str, int]
    failing_codes: tuple[str, ...]     # codes of warn / fail checks, in check order
    duration_s: float
    error: str | None
    param_file: str | None
    sidecar_path: str
    notebook_path: str | None          # None when no executed notebook exists
    html_path: str | None              # None when no HTML report could be made
    log_path: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "notebook": self.notebook,
            "status": self.status,
            "verdict": self.verdict,
            "tally": dict(self.tally),
            "failing_codes": list(self.failing_codes),
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "param_file": self.param_file,
            "sidecar_path": self.sidecar_path,
            "notebook_path": self.notebook_path,
            "html_path": self.html_path,
            "log_path": self.log_path,
        }


@dataclass(frozen=True)
class RunSummary:
    """All hosts of one :func:`run_hosts` call, in parameter-file order."""

    out_dir: str
    started_at: str
    duration_s: float
    workers: int
    rows: tuple[HostRun, ...] = field(default_factory=tuple)

    @property
    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in ("ok", "findings", "failed", "timeout", "dead_kernel")}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    @property
    def exit_code(self) -> int:
        """0 when every host is ok, else 1 (findings, failed, timeout, dead kernel)."""
        return 0 if self.rows and all(r.ok for r in self.rows) else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": self.out_dir,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "workers": self.workers,
            "counts": self.counts,
            "exit_code": self.exit_code,
            "hosts": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class HostPlan:
    """What will run for one host (validated; nothing written yet)."""

    host: str
    kind: str                          # "vm" | "arc"
    notebook: Path                     # input runbook
    param_file: Path | None
    parameters: Mapping[str, Any]      # from the file, plus sidecar_path / host_name
    host_dir: Path
    environment: Mapping[str, str] = field(default_factory=dict)  # extra env for this host's kernel

    @property
    def notebook_path(self) -> Path:
        return self.host_dir / f"{self.host}.ipynb"

    @property
    def html_path(self) -> Path:
        return self.host_dir / f"{self.host}.html"

    @property
    def sidecar_path(self) -> Path:
        return self.host_dir / f"{self.host}.json"

    @property
    def log_path(self) -> Path:
        return self.host_dir / f"{self.host}.log"

    @property
    def evidence_file(self) -> Path:
        """A live run's evidence bundle (runbook.evidence_file of the sidecar)."""
        return self.host_dir / f"{self.host}.evidence.json"


# --------------------------------------------------------------------------- planning


def plan_hosts(
    param_files: Sequence[str | os.PathLike[str]],
    *,
    notebook: str,
    out_dir: str | os.PathLike[str],
    notebooks_dir: str | os.PathLike[str] | None = None,
) -> list[HostPlan]:
    """Validate the inputs and decide what runs where; raises UsageError, writes nothing.

    Each file is a YAML mapping of the runbook's parameters. The host name is its ``host``
    (or ``host_name``) key, else the file name without extension; it is passed to the
    notebook as ``host_name`` (``host`` itself is not passed on). Every other key must be a
    name assigned in the notebook's ``parameters`` cell; with the real runbooks
    (``notebooks_dir`` not given) the values are also checked with
    :func:`imds_helpers.runbooks.runbook.validate_parameters`. ``sidecar_path`` may not be set.
    With no parameter files, plans one run for this machine (host name from
    ``socket.gethostname()``, the notebook's default parameters).
    """
    if notebook not in NOTEBOOK_KINDS:
        raise UsageError(f"unknown notebook kind {notebook!r} (choose {', '.join(NOTEBOOK_KINDS)})",
                         argument="--notebook")
    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else DEFAULT_NOTEBOOKS_DIR
    out = _check_out_dir(Path(out_dir))

    entries: list[tuple[Path | None, dict[str, Any], str]] = []
    environments: dict[str, dict[str, str]] = {}
    if not param_files:
        entries.append((None, {}, local_host_name()))
    for raw in param_files:
        path = Path(raw)
        params = _load_param_file(path)
        host = _host_from(params, path, real_runbooks=notebooks_dir is None)
        environments[host.lower()] = _environment_from(params, path)
        entries.append((path, params, host))

    declared: dict[Path, set[str] | None] = {}
    seen: dict[str, Path | None] = {}
    plans: list[HostPlan] = []
    for path, params, host in entries:
        where = str(path) if path is not None else "parameters"
        if host.lower() in seen:
            raise UsageError(f"host {host!r} appears twice ({seen[host.lower()]} and {path}); "
                             f"host names must be unique (case-insensitively)")
        seen[host.lower()] = path
        _check_not_a_run_output(host, where)
        kind = _notebook_kind(notebook, params, path)
        nb_path = nb_dir / NOTEBOOK_FILES[kind]
        if not nb_path.is_file():
            raise UsageError(f"runbook for {kind!r} not found: {nb_path}", argument="--notebook")
        if nb_path not in declared:
            declared[nb_path] = notebook_parameters(nb_path)
        _check_names(params, declared[nb_path], nb_path, where)
        if notebooks_dir is None:  # the real runbooks: their own validation, before any kernel
            _validate_for_runbook(kind, params, host, where)
        host_dir = out / host
        _check_not_a_link(host_dir)
        if host_dir.exists() and not host_dir.is_dir():
            raise UsageError(f"{host_dir} exists and is not a directory", argument="--out")
        parameters = {**params, "host_name": host,
                      "sidecar_path": str((host_dir / f"{host}.json").resolve())}
        plans.append(HostPlan(host=host, kind=kind, notebook=nb_path.resolve(),
                              param_file=path, parameters=parameters,
                              host_dir=host_dir.resolve(),
                              environment=environments.get(host.lower(), {})))
    if notebooks_dir is None:   # last: every file is valid and every name unique by now
        for plan in plans:
            _check_host_is_here(plan.parameters, plan.host, str(plan.param_file or "parameters"), kind=plan.kind)
    return plans


def notebook_parameters(nb_path: Path) -> set[str] | None:
    """Names assigned in the notebook's ``parameters`` cell (None: no such cell / unparsable)."""
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read runbook {nb_path}: {err}", argument="--notebook") from None
    except RecursionError:
        raise UsageError(f"cannot read runbook {nb_path}: JSON nested too deeply", argument="--notebook") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise UsageError(f"cannot read runbook {nb_path}: not a notebook (no list of cells)", argument="--notebook")
    for cell in cells:
        metadata = cell.get("metadata") if isinstance(cell, dict) else None
        tags = metadata.get("tags") if isinstance(metadata, dict) else None
        if isinstance(tags, list) and "parameters" in tags and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            source = "".join(map(str, source)) if isinstance(source, list) else str(source)
            try:
                tree = ast.parse(source)
            except (SyntaxError, ValueError, RecursionError):   # not Python, a NUL byte, absurdly nested
                return None
            names: set[str] = set()
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, ast.AnnAssign) else []
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            return names
    return None


def kernel_environment() -> tuple[str, ...]:
    """The variables a parameter file's ``environment:`` may set: exactly those the checks
    read (the proxy variables in both spellings, the managed-identity endpoint variables,
    the container and SDK-redirect markers, the endpoint override), taken from the modules
    that read them. Anything else could only change how the kernel runs, not what it
    diagnoses: PYTHONPATH, PYTHONSTARTUP, LD_PRELOAD, PATH, ... would run code."""
    from imds_helpers.analyze.platform import ENVIRONMENT_VARIABLES
    from imds_helpers.analyze.proxy import PROXY_VARIABLES

    return tuple(dict.fromkeys(PROXY_VARIABLES + ENVIRONMENT_VARIABLES))


MAX_ENV_VALUE_CHARS = 4096


def _environment_from(params: dict[str, Any], path: Path) -> dict[str, str]:
    """``environment``: variables for this host's kernel (consumed here, not a notebook
    parameter) - e.g. the proxy settings an agent runs with, to reproduce what it sees.
    Only :func:`kernel_environment`'s names are accepted."""
    env = params.pop("environment", None)
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise UsageError("'environment' must map variable names to strings", argument=str(path))
    allowed = kernel_environment()
    for name, value in env.items():
        if name not in allowed:
            from imds_helpers.model.validate import shown

            raise UsageError(f"environment variable {shown(name)} is not accepted: only the variables this "
                             f"diagnosis reads may be set ({', '.join(allowed)})", argument=str(path))
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UsageError(f"environment variable {name}: must be a string", argument=str(path))
        if isinstance(value, str) and (len(value) > MAX_ENV_VALUE_CHARS or "\x00" in value):
            raise UsageError(f"environment variable {name}: must be at most {MAX_ENV_VALUE_CHARS} "
                             "characters without NUL", argument=str(path))
    return {k: str(v) for k, v in env.items()}


def _host_from(params: dict[str, Any], path: Path, *, real_runbooks: bool = True) -> str:
    """``host`` (or ``host_name``) from the file, else the file name; consumed here. With the
    real runbooks, an ``evidence_path`` is made absolute (relative to the file's folder) and,
    when the file names no host, the host is the one the evidence was collected on."""
    given = {k: params.pop(k) for k in ("host", "host_name") if k in params}
    values = {v for v in given.values() if v not in (None, "")}
    if len(values) > 1:
        raise UsageError(f"'host' and 'host_name' disagree ({', '.join(map(repr, sorted(map(str, values))))})",
                         argument=str(path))
    evidence = params.get("evidence_path")
    if real_runbooks and isinstance(evidence, str) and evidence:
        # Relative to the parameter file, as a reader of the file expects; not through
        # symlinks (abspath only joins), so the bundle reader still sees and refuses one.
        params["evidence_path"] = evidence = os.path.abspath(os.path.join(path.parent, evidence))
        if not values:
            try:
                return check_host_name(_evidence_host(evidence), argument=None)
            except UsageError as err:
                raise UsageError(f"{err} (the host the evidence was collected on)", argument=str(path)) from None
    host = values.pop() if values else path.stem
    try:
        return check_host_name(host, argument=None)
    except UsageError as err:
        raise UsageError(f"{err} (from the 'host' key or the file name)", argument=str(path)) from None


def _evidence_host(evidence_path: str) -> str:
    """The host name a bundle was collected on (the whole bundle is checked later, with the
    runbook's other parameters)."""
    from imds_helpers.cli.evidence import read_bundle

    try:
        return str(read_bundle(Path(evidence_path))["host"]["hostname"])
    except UsageError as err:
        raise UsageError(str(err).split(": ", 1)[-1], argument="evidence_path") from None


def _check_host_is_here(params: Mapping[str, Any], host: str, where: str, *, kind: str = "") -> None:
    """A runbook checks the machine it runs on: a file naming another machine needs that
    machine's evidence (``evidence_path``), else its report would carry a name that is not
    the machine it describes. Training (``emulator_scenario``) may use any label."""
    from imds_helpers.runbooks.runbook import another_machine

    problem = another_machine(params, host, kind)
    if problem:
        raise UsageError(f"{problem} in this file", argument=where)



def _check_not_a_run_output(host: str, where: str) -> None:
    """``<out>/<host>/`` must not be a file the run writes at the top of ``<out>``."""
    for name in SUMMARY_FILES.values():
        if host.lower() == name.lower():
            raise UsageError(f"host name {host!r} collides with the run's {name} in the results "
                             f"folder; rename the host (the 'host' key or the file name)",
                             argument=where)


def _check_names(params: Mapping[str, Any], declared: set[str] | None, nb_path: Path,
                 where: str) -> None:
    if declared is None:
        return
    for name in params:
        if name not in declared:
            close = closest_name(name, sorted(declared))
            hint = f" (did you mean {close!r}?)" if close else ""
            raise UsageError(f"unknown parameter {name!r} for {nb_path.name}{hint}", argument=where)


def _validate_for_runbook(kind: str, params: Mapping[str, Any], host: str, where: str) -> None:
    """Types and values as the runbook itself will check them (imds_helpers.runbooks.runbook)."""
    try:
        from imds_helpers.runbooks.runbook import read_evidence, validate_parameters
    except ImportError:  # pragma: no cover - the facade is part of the package
        return
    try:
        values = validate_parameters(kind, {**params, "host_name": host})
        if values["evidence_path"]:   # readable, this runbook's, collected on this host
            read_evidence(kind, values)
    except UsageError as err:
        raise UsageError(str(err), argument=where) from None


def _load_param_file(path: Path) -> dict[str, Any]:
    from imds_helpers.fleet.paramfile import load_parameter_yaml   # bounded: size, aliases, depth, numbers, keys

    if not path.is_file():
        raise UsageError("parameter file not found" if not path.exists()
                         else "parameter file is not a regular file", argument=str(path))
    data = load_parameter_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"expected a mapping of parameter names to values, got "
                         f"{type(data).__name__}", argument=str(path))
    for key in data:
        if not isinstance(key, str) or not _IDENTIFIER.match(key):
            raise UsageError(f"parameter name {key!r} is not a valid Python identifier",
                             argument=str(path))
        if key == "sidecar_path":
            raise UsageError(f"parameter {key!r} is set by the runner; remove it from the file",
                             argument=str(path))
    return {k: _papermill_value(v) for k, v in data.items()}


def _papermill_value(value: Any) -> Any:
    """YAML dates etc. would reach the notebook as odd strings; make them JSON-native."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _papermill_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_papermill_value(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _notebook_kind(notebook: str, params: Mapping[str, Any], path: Path | None) -> str:
    target = params.get("target")
    if target in (None, ""):
        return "vm" if notebook == "auto" else notebook
    if target not in ("vm", "arc"):
        raise UsageError(f"target must be 'vm' or 'arc', got {target!r}", argument=str(path))
    if notebook != "auto" and target != notebook:
        raise UsageError(f"target is {target!r} but --notebook is {notebook!r}", argument=str(path))
    return str(target)


def _check_out_dir(out: Path) -> Path:
    """The output folder must be (or be creatable as) a writable directory, not a symlink."""
    _check_not_a_link(out)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{probe} is not a directory", argument="--out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{probe} is not writable", argument="--out")
    return out


def _check_not_a_link(folder: Path) -> None:
    """Output folders are never followed through a symbolic link: one planted where the run
    writes (``--out``, or ``<out>/<host>``) would send every report somewhere else."""
    if folder.is_symlink():
        raise UsageError(f"{folder} is a symbolic link; output folders are not followed "
                         f"(name the real folder)", argument="--out")


def _make_real_dir(folder: Path) -> None:
    """``mkdir -p`` that refuses a symlink planted since planning (``mkdir`` accepts one)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:   # a file, or a link to one: named below
        pass
    _check_not_a_link(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a directory", argument="--out")


def _check_number(name: str, value: Any, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"must be a number, got {value!r}", argument=name)
    if integer:
        if int(value) != value or not 1 <= value <= MAX_WORKERS:
            raise UsageError(f"must be a whole number from 1 to {MAX_WORKERS}, got {value!r}",
                             argument=name)
        return float(value)
    if not math.isfinite(value) or value <= 0 or value > MAX_TIMEOUT_S:
        raise UsageError(f"must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, "
                         f"got {value!r}", argument=name)
    return float(value)


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise UsageError(f"no Jupyter kernel named {kernel_name!r} is installed "
                         f"(see 'jupyter kernelspec list')", argument="kernel_name") from None


# --------------------------------------------------------------------------- running


def run_hosts(
    param_files: Sequence[str | os.PathLike[str]],
    *,
    notebook: str = "auto",
    out_dir: str | os.PathLike[str],
    workers: int = 2,
    cell_timeout: float = 60,
    host_timeout: float = 300,
    kernel_name: str = "python3",
    notebooks_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Execute the runbook once per parameter file; return the per-host summary.

    ``notebook``: ``"vm"``, ``"arc"`` or ``"auto"`` (each file's ``target``, default vm).
    ``cell_timeout`` limits each cell (rounded up to whole seconds, as nbclient wants);
    ``host_timeout`` limits each host's whole run, kernel start included.
    ``notebooks_dir`` replaces the repository's ``notebooks/`` (tests, benchmarks).
    ``progress`` (if given) is called in the calling thread with each finished
    :class:`HostRun`, in completion order. Raises UsageError (nothing written) for bad input.

    Workers come from a ``multiprocessing`` forkserver, which imports the caller's main
    module the way ``ProcessPoolExecutor`` does: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard (console scripts, ``python -m``, pytest and
    Jupyter kernels are fine as they are).
    """
    _check_number("--workers", workers, integer=True)
    _check_number("--cell-timeout", cell_timeout)
    _check_number("--timeout", host_timeout)
    if not isinstance(kernel_name, str) or not kernel_name:
        raise UsageError("must be a kernel name", argument="kernel_name")
    plans = plan_hosts(param_files, notebook=notebook, out_dir=out_dir,
                       notebooks_dir=notebooks_dir)
    _check_kernel(kernel_name)

    # ---- validation done; from here on we write.
    started_at, t0 = now_iso(), time.monotonic()
    _make_real_dir(Path(out_dir))
    out = Path(out_dir).resolve()
    for plan in plans:
        _make_real_dir(plan.host_dir)
        for stale in (plan.notebook_path, plan.html_path, plan.sidecar_path, plan.log_path, plan.evidence_file):
            stale.unlink(missing_ok=True)

    rows: dict[str, HostRun] = {}
    with tempfile.TemporaryDirectory(prefix="imds-runbook-run-") as scratch:
        scheduler = _Scheduler(
            plans, workers=int(workers), cell_timeout=float(cell_timeout),
            host_timeout=float(host_timeout), kernel_name=kernel_name, scratch=Path(scratch),
        )
        scheduler.warm_up()
        for row in scheduler.run():
            rows[row.host] = row
            if progress is not None:
                progress(row)
    return RunSummary(
        out_dir=str(out), started_at=started_at, duration_s=time.monotonic() - t0,
        workers=int(workers), rows=tuple(rows[p.host] for p in plans),
    )


@dataclass
class _Running:
    plan: HostPlan
    process: Any                       # multiprocessing.Process
    result_path: Path
    started_at: str
    t0: float
    deadline: float


class _Scheduler:
    """Single-threaded: start up to ``workers`` host processes, reap, kill on deadline."""

    def __init__(self, plans: Sequence[HostPlan], *, workers: int, cell_timeout: float,
                 host_timeout: float, kernel_name: str, scratch: Path) -> None:
        self.pending = deque(plans)
        self.workers = workers
        self.cell_timeout = cell_timeout
        self.host_timeout = host_timeout
        self.kernel_name = kernel_name
        self.scratch = scratch
        self.ctx = _mp_context()

    def warm_up(self) -> None:
        """Start the forkserver (it imports papermill once) before any host's clock starts."""
        process = self.ctx.Process(target=_noop, name="imds-runbook-warm-up")
        os.environ[_PRELOAD_ENV] = "1"   # seen only if this start launches the forkserver
        try:
            process.start()
        finally:
            os.environ.pop(_PRELOAD_ENV, None)
        process.join()

    def run(self) -> Iterable[HostRun]:
        running: dict[int, _Running] = {}    # sentinel -> run
        try:
            while self.pending or running:
                while self.pending and len(running) < self.workers:
                    job = self._start(self.pending.popleft())
                    running[job.process.sentinel] = job
                now = time.monotonic()
                wait_s = max(0.0, min(j.deadline for j in running.values()) - now)
                ready = multiprocessing.connection.wait(list(running), timeout=wait_s)
                for sentinel in ready:
                    job = running.pop(sentinel)
                    job.process.join()
                    yield self._finish(job, killed=False)
                now = time.monotonic()
                for sentinel, job in list(running.items()):
                    if now >= job.deadline:
                        running.pop(sentinel)
                        _kill_tree(job.process)
                        yield self._finish(job, killed=True)
        finally:  # interrupted (Ctrl-C) or the caller stopped iterating: leave nothing behind
            for job in running.values():
                _kill_tree(job.process)

    def _start(self, plan: HostPlan) -> _Running:
        result_path = self.scratch / f"{plan.host}.result.json"
        job = {
            "host": plan.host,
            "input": str(plan.notebook),
            "output": str(plan.notebook_path),
            "html": str(plan.html_path),
            "log": str(plan.log_path),
            "cwd": str(plan.host_dir),
            "parameters": dict(plan.parameters),
            "environment": dict(plan.environment),
            "kernel_name": self.kernel_name,
            # nbclient's timeouts are whole seconds (Integer traits): round up.
            "cell_timeout": math.ceil(self.cell_timeout),
            "start_timeout": math.ceil(min(60.0, self.host_timeout)),
            "result": str(result_path),
        }
        process = self.ctx.Process(target=_worker_main, args=(job,), daemon=False,
                                   name=f"imds-runbook-{plan.host}")
        t0 = time.monotonic()
        started_at = now_iso()
        process.start()
        return _Running(plan, process, result_path, started_at, t0, t0 + self.host_timeout)

    def _finish(self, job: _Running, *, killed: bool) -> HostRun:
        plan = job.plan
        duration = time.monotonic() - job.t0
        outcome: dict[str, Any] = {}
        if killed:
            outcome = {"status": "timeout",
                       "error": f"host run exceeded the host timeout of {self.host_timeout:g} s; "
                                f"worker and kernel were killed"}
            if plan.notebook_path.exists():   # partial notebook (saved after each cell)
                _render_html_in_worker(self.ctx, plan)
        else:
            try:
                outcome = json.loads(job.result_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                code = job.process.exitcode
                how = f"was killed by signal {-code}" if code is not None and code < 0 \
                    else f"exited with code {code}"
                outcome = {"status": "failed",
                           "error": f"runner worker {how} without a result; see {plan.log_path}"}
        return _finalize(plan, outcome, started_at=job.started_at, duration_s=duration)


def _finalize(plan: HostPlan, outcome: Mapping[str, Any], *, started_at: str,
              duration_s: float) -> HostRun:
    """Decide the run status, make sure a sidecar with ``run`` exists, build the row."""
    status = str(outcome.get("status", "failed"))
    error = outcome.get("error")
    sidecar: dict[str, Any] | None = None
    if plan.sidecar_path.exists():
        try:
            sidecar = read_sidecar(plan.sidecar_path)
        except SidecarError as err:
            if status == "completed":
                status, error = "failed", f"the notebook wrote an unreadable sidecar: {err.problem}"
            else:
                error = f"{error}; sidecar unreadable: {err.problem}"
    elif status == "completed":
        status, error = "failed", "the notebook completed without writing its sidecar"
    if status == "completed":
        assert sidecar is not None
        status = run_status_for(sidecar["verdict"])
    if sidecar is None:
        sidecar = build_sidecar(
            {"verdict": "fail", "target": plan.kind, "endpoint": "",
             "tally": {"ok": 0, "warn": 0, "fail": 0, "skip": 0}, "platform": {}, "checks": []},
            host=plan.host, notebook=plan.notebook.stem,
            parameters={k: v for k, v in plan.parameters.items() if k not in RUNNER_PARAMETERS},
            started_at=started_at, duration_s=duration_s,
        )
    notebook_path = str(plan.notebook_path) if plan.notebook_path.exists() else None
    html_path = str(plan.html_path) if plan.html_path.exists() else None
    if error:
        error = " ".join(str(error).split())[:500]
    sidecar["run"] = {"status": status, "error": error or None,
                      "duration_s": round(duration_s, 3),
                      "notebook_path": notebook_path, "html_path": html_path}
    write_sidecar(plan.sidecar_path, sidecar)
    failing = tuple(dict.fromkeys(
        str(c.get("code", "")) for c in sidecar["checks"] if c.get("status") in ("warn", "fail")))
    return HostRun(
        host=plan.host, notebook=plan.kind, status=status, verdict=sidecar["verdict"],
        tally=dict(sidecar.get("tally") or {}), failing_codes=failing,
        duration_s=duration_s, error=error or None,
        param_file=str(plan.param_file) if plan.param_file else None,
        sidecar_path=str(plan.sidecar_path), notebook_path=notebook_path,
        html_path=html_path, log_path=str(plan.log_path),
    )


# --------------------------------------------------------------------------- processes


_PRELOAD = ["papermill", "nbclient.exceptions", "nbconvert.exporters.html",
            "imds_helpers.model.findings", "imds_helpers.fleet.sidecar", "imds_helpers.fleet.runner"]


def _mp_context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - Windows


def _noop() -> None:
    pass


# Set in the environment only while the forkserver starts: its import of this module (a
# preload) then pays every first-use cost once - lazy imports of the HTML exporter's
# filters, template loading, jupyter_client's provisioner entry points - instead of once
# per host in every forked worker (about 0.5 s of CPU per host).
_PRELOAD_ENV = "IMDS_RUNBOOK_FORKSERVER_PRELOAD"
_EXPORTER: Any = None


def _html_exporter() -> Any:
    global _EXPORTER
    if _EXPORTER is None:
        from nbconvert import HTMLExporter

        _EXPORTER = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                                 exclude_output_prompt=True)
    return _EXPORTER


def _warm_forkserver() -> None:
    try:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.provisioning import KernelProvisionerFactory
        from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

        cell = new_code_cell("1", outputs=[new_output("stream", name="stdout", text="1\n")])
        _html_exporter().from_notebook_node(new_notebook(cells=[new_markdown_cell("# warm"), cell]))
        spec = KernelSpecManager().get_kernel_spec("python3")
        KernelProvisionerFactory.instance().is_provisioner_available(spec)
    except Exception:  # only an optimisation
        pass


def _ipc_kernel_manager(parent: str) -> type:
    """A kernel manager that talks to its kernel over Unix sockets in a private temp dir.

    With TCP, jupyter_client picks "free" ports and the kernel binds them later; parallel
    hosts race for them ("Address already in use", kernel never answers). IPC has no ports.
    """
    from jupyter_client.manager import AsyncKernelManager

    # Inside the run's scratch folder: removed with it even when this worker is killed.
    ipc_dir = tempfile.mkdtemp(prefix="k-", dir=parent)

    class IPCKernelManager(AsyncKernelManager):
        directory = ipc_dir

        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(ipc_dir, "k"))
            super().__init__(**kwargs)

    return IPCKernelManager


def _worker_main(job: dict[str, Any]) -> None:
    """Runs in the worker process: execute one notebook, render HTML, report the outcome."""
    if hasattr(os, "setsid"):
        os.setsid()  # own process group: the parent can kill us with everything we started
    _redirect_output(job["log"])
    os.environ.pop(_PRELOAD_ENV, None)   # not for the kernel
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    os.environ.update(job.get("environment", {}))  # the kernel inherits this worker's environment
    outcome: dict[str, Any]
    try:
        import papermill as pm
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        try:
            manager = _ipc_kernel_manager(os.path.dirname(job["result"]))
            try:
                pm.execute_notebook(
                    job["input"], job["output"], parameters=job["parameters"],
                    kernel_name=job["kernel_name"], cwd=job["cwd"],
                    execution_timeout=job["cell_timeout"], start_timeout=job["start_timeout"],
                    progress_bar=False, log_output=False, request_save_on_cell_execute=True,
                    # The sidecar is written by then; a graceful shutdown sometimes idles ~3 s.
                    shutdown_kernel="immediate",
                    kernel_manager_class=manager,
                )
            finally:
                shutil.rmtree(manager.directory, ignore_errors=True)
            outcome = {"status": "completed", "error": None}
        except pm.PapermillExecutionError as err:
            outcome = {"status": "failed",
                       "error": f"cell {err.exec_count or err.cell_index} raised "
                                f"{err.ename}: {err.evalue}"}
        except CellTimeoutError:
            outcome = {"status": "timeout",
                       "error": f"a cell ran longer than the cell timeout of "
                                f"{job['cell_timeout']:g} s"}
        except DeadKernelError:
            outcome = {"status": "dead_kernel",
                       "error": "the kernel died (crashed, exited or was killed, e.g. out of memory)"}
    except Exception as err:  # kernel would not start, bad notebook, ...
        outcome = {"status": "failed", "error": f"{type(err).__name__}: {_one_line(err)}"}
    if os.path.exists(job["output"]):
        html_error = _render_html(job["output"], job["html"], job["host"])
        if html_error:
            print(f"imds-runbook: HTML report failed: {html_error}", file=sys.stderr)
    atomic_write_text(Path(job["result"]), json.dumps(outcome))


def _render_worker_main(nb_path: str, html_path: str, host: str, log: str) -> None:
    if hasattr(os, "setsid"):
        os.setsid()
    _redirect_output(log, append=True)
    error = _render_html(nb_path, html_path, host)
    if error:
        print(f"imds-runbook: HTML report failed: {error}", file=sys.stderr)


def _render_html(nb_path: str, html_path: str, host: str) -> str | None:
    """Executed notebook -> HTML without code cells (``jupyter nbconvert --no-input``)."""
    try:
        import nbformat

        nb = nbformat.read(nb_path, as_version=4)
        body, _ = _html_exporter().from_notebook_node(
            nb, resources={"metadata": {"name": f"{host} - IMDS runbook"}})
        atomic_write_text(Path(html_path), body)
        return None
    except Exception as err:  # a report we cannot render must not change the run status
        return f"{type(err).__name__}: {_one_line(err)}"


def _render_html_in_worker(ctx: Any, plan: HostPlan) -> None:
    process = ctx.Process(target=_render_worker_main, daemon=False,
                          args=(str(plan.notebook_path), str(plan.html_path), plan.host,
                                str(plan.log_path)))
    process.start()
    process.join(HTML_RENDER_TIMEOUT_S)
    if process.is_alive():
        _kill_tree(process)


def _redirect_output(log_path: str, *, append: bool = False) -> None:
    """Point fds 1 and 2 (inherited by the kernel) at the host's log file."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                 | (os.O_APPEND if append else os.O_TRUNC), 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _kill_tree(process: Any) -> None:
    """SIGKILL a worker, its process group and every descendant (the kernel has its own)."""
    pid = process.pid
    if pid is None:
        return
    if os.name == "posix":
        for child in _descendants(pid):
            for kill in (lambda p: os.killpg(p, signal.SIGKILL), lambda p: os.kill(p, signal.SIGKILL)):
                try:
                    kill(child)
                except OSError:
                    pass
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        process.kill()
    except (OSError, ValueError):
        pass
    process.join(10)


def _descendants(pid: int) -> list[int]:
    """Pids of all descendants of ``pid`` (psutil when installed, else /proc)."""
    try:
        import psutil

        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    except ImportError:
        pass
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] if text else type(err).__name__


__all__ = [
    "DEFAULT_NOTEBOOKS_DIR", "NOTEBOOK_FILES", "NOTEBOOK_KINDS", "HostPlan", "HostRun",
    "RunSummary", "notebook_parameters", "plan_hosts", "run_hosts",
]


if os.environ.get(_PRELOAD_ENV) == "1":   # imported as a preload by a starting forkserver
    _warm_forkserver()
