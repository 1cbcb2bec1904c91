"""``imds-runbook fleet``'s work: collect over Ansible, check whose evidence came back, render a
runbook per host from its evidence, and keep one result per inventory host.

:func:`run_fleet` runs the playbook (:mod:`imds_helpers.fleet.ansible_run`), turns each host's
record into a status (:mod:`imds_helpers.fleet.fleet_hosts`), reads every bundle back (a bundle
that does not load is ``collect_failed``), checks its identity against the inventory's
``imds_expect_*`` and against the other hosts' bundles, then renders the runbooks with the same
runner as ``imds-runbook run`` (:func:`imds_helpers.fleet.runner.run_hosts`), one generated
parameter file per host::

    OUT/<host>/evidence.json       the bundle, as the probe printed it on the host
    OUT/<host>/_fleet.json         what the fleet decided: status, reason, identity, Ansible's record
    OUT/<host>/params.yaml         host, target, evidence_path (render it again: imds-runbook run)
    OUT/<host>/<host>.ipynb|.html  the executed runbook and its report (collected hosts)
    OUT/<host>/<host>.json         the sidecar: every host has one, with its run status
    OUT/_ansible/                  ansible.log, events.jsonl, the probe, the extra variables

A host that could not be diagnosed gets a sidecar without checks (verdict ``skip``) and its
fleet status (``unreachable``, ``no_python``, ...) with the reason, so the summaries and
``imds-runbook report`` list it like any other host. Bad input raises UsageError before Ansible
starts.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from imds_helpers.fleet import fleet_hosts as fh
from imds_helpers.fleet.ansible_run import PlaybookRun, find_ansible_playbook, log_problem, playbook_command, run_playbook
from imds_helpers.fleet.runner import NOTEBOOK_FILES, RunSummary
from imds_helpers.fleet.sidecar import (
    FLEET_STATUSES,
    SidecarError,
    build_sidecar,
    now_iso,
    read_sidecar,
    write_sidecar,
)
from imds_helpers.model.errors import UsageError
from imds_helpers.runbooks.resources import CHECKOUT, PACKAGED, data_dir

WORK_DIR = "_ansible"                 # a host name cannot start with '_'
PARAMS_FILE = "params.yaml"
FLEET_NOTEBOOK = "03_fleet_report.ipynb"
NOTEBOOK_OUT = "summary.ipynb"
MAX_FORKS = 1000
_SHELL_PLAIN = re.compile(r"^[A-Za-z0-9/._+-]+$")


@dataclass(frozen=True)
class FleetProgress:
    """One line of progress: a host collected (or not), or a host's report rendered."""

    stage: str            # "start" | "collect" | "render"
    host: str
    status: str
    detail: str
    done: int
    total: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "host": self.host, "status": self.status, "detail": self.detail,
                "done": self.done, "total": self.total, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class FleetHost:
    """One inventory host at the end: its run status (a runbook's, or the fleet's), why, and
    where its files are."""

    host: str
    status: str
    verdict: str
    reason: str | None
    failing_codes: tuple[str, ...]
    collect_s: float | None              # seconds from the start until its record arrived
    sidecar_path: str
    html_path: str | None
    evidence_path: str | None
    outcome: fh.Outcome

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "status": self.status, "verdict": self.verdict, "reason": self.reason,
                "failing_codes": list(self.failing_codes),
                "collect_s": None if self.collect_s is None else round(self.collect_s, 3),
                "sidecar_path": self.sidecar_path, "html_path": self.html_path,
                "evidence_path": self.evidence_path, "outcome": self.outcome.to_dict()}


@dataclass(frozen=True)
class FleetSummary:
    out_dir: str
    started_at: str
    duration_s: float
    collect_s: float
    render_s: float
    hosts: tuple[FleetHost, ...]
    ansible: PlaybookRun
    render: RunSummary | None
    notebook_path: str | None = None
    notebook_error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.hosts:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    @property
    def exit_code(self) -> int:
        """0 when every host is ok, else 1 (findings, or a host that could not be diagnosed)."""
        return 0 if self.hosts and all(r.ok for r in self.hosts) else 1

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "started_at": self.started_at, "duration_s": round(self.duration_s, 3),
                "collect_s": round(self.collect_s, 3), "render_s": round(self.render_s, 3),
                "counts": self.counts, "exit_code": self.exit_code, "hosts": [h.to_dict() for h in self.hosts],
                "ansible": self.ansible.to_dict(), "render": self.render.to_dict() if self.render else None,
                "notebook_path": self.notebook_path, "notebook_error": self.notebook_error}


Progress = Callable[[FleetProgress], None]


# --------------------------------------------------------------------------- the probe


def _builder():
    """tools/build_probe.py (``make probe``'s builder): the checkout's, else the copy the
    wheel carries (setup.py puts it into imds_helpers/_data/tools/)."""
    for candidate in (CHECKOUT / "tools" / "build_probe.py", PACKAGED / "tools" / "build_probe.py"):
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("imds_build_probe", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)   # type: ignore[union-attr]
            return module
    raise UsageError("the probe builder (tools/build_probe.py) is not installed; give --probe imds-probe.pyz")


def build_probe(out: Path) -> Path:
    """``imds-probe.pyz`` built from this installation's package into ``out``."""
    package = Path(__file__).resolve().parents[1]
    return Path(_builder().build_probe(out, package=package))


def _probe_for(probe: str | os.PathLike[str] | None, work: Path, scratch: list[Path]) -> Path:
    """The probe to copy: the given one or a fresh build. Its path goes into a shell command
    line on the controller side of Ansible's ``script``: one with spaces or quotes is copied
    to a plain temporary path first."""
    if probe is not None:
        path = Path(probe)
        if not path.is_file():
            raise UsageError(f"{probe} is not a file", argument="--probe")
        path = path.resolve()
    else:
        path = build_probe(work / "imds-probe.pyz").resolve()
    if _SHELL_PLAIN.match(str(path)):
        return path
    folder = Path(tempfile.mkdtemp(prefix="imds-fleet-"))
    scratch.append(folder)
    return Path(shutil.copy2(path, folder / "imds-probe.pyz"))


# --------------------------------------------------------------------------- checks before anything runs


def _check_inputs(inventory: str, limit: str | None, forks: int | None, extra_args: Sequence[str],
                  collect_timeout: float | None) -> None:
    if not isinstance(inventory, str) or not inventory or "\x00" in inventory:
        raise UsageError("give an inventory: -i FILE (or -i 'host1,host2,')", argument="-i")
    if "," not in inventory and not Path(inventory).exists():
        raise UsageError(f"inventory {inventory} not found", argument="-i")
    if limit is not None and (not limit or "\x00" in limit):
        raise UsageError("must be a host pattern", argument="--limit")
    if forks is not None and (isinstance(forks, bool) or not isinstance(forks, int) or not 1 <= forks <= MAX_FORKS):
        raise UsageError(f"must be a whole number from 1 to {MAX_FORKS}, got {forks!r}", argument="--forks")
    if any(not isinstance(a, str) or "\x00" in a for a in extra_args):
        raise UsageError("ansible-playbook options must be text", argument="--")
    if collect_timeout is not None and (isinstance(collect_timeout, bool) or not isinstance(collect_timeout, (int, float))
                                        or not math.isfinite(collect_timeout) or not 1 <= collect_timeout <= 24 * 3600):
        raise UsageError(f"must be from 1 to 86400 seconds, got {collect_timeout!r}", argument="--collect-timeout")


# --------------------------------------------------------------------------- the run


def run_fleet(
    inventory: str,
    *,
    out_dir: str | os.PathLike[str],
    limit: str | None = None,
    forks: int | None = None,
    extra_args: Sequence[str] = (),
    probe: str | os.PathLike[str] | None = None,
    collect_timeout: float | None = None,
    workers: int = 2,
    host_timeout: float = 300,
    cell_timeout: float = 60,
    kernel_name: str = "python3",
    notebook: bool = True,
    notebooks_dir: str | os.PathLike[str] | None = None,
    ansible_playbook: str | None = None,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> FleetSummary:
    """Collect from every inventory host, render a runbook per collected host, keep a result
    for every host (see the module docstring). Raises UsageError for bad input (before Ansible
    runs) and when Ansible reached no host at all (an inventory or option it refused)."""
    from imds_helpers.fleet import runner

    _check_inputs(inventory, limit, forks, extra_args, collect_timeout)
    runner._check_number("--workers", workers, integer=True)
    runner._check_number("--timeout", host_timeout)
    runner._check_number("--cell-timeout", cell_timeout)
    out = runner._check_out_dir(Path(out_dir))
    executable = ansible_playbook or find_ansible_playbook()
    runner._check_kernel(kernel_name)

    # ---- validated; from here on we write.
    started_at, t0 = now_iso(), time.monotonic()
    runner._make_real_dir(out)
    out = out.resolve()
    work = out / WORK_DIR
    runner._make_real_dir(work)
    scratch: list[Path] = []
    try:
        probe_path = _probe_for(probe, work, scratch)
        extra_vars = {"imds_out_dir": str(out), "imds_probe": str(probe_path)}
        if collect_timeout is not None:
            extra_vars["imds_collect_timeout"] = int(math.ceil(collect_timeout))
        vars_file = work / "extra-vars.json"
        vars_file.write_text(json.dumps(extra_vars, indent=1) + "\n", encoding="utf-8")
        command = playbook_command(inventory, extra_vars_file=vars_file, limit=limit, forks=forks,
                                   extra_args=extra_args, executable=executable)
        collected = _Collecting(progress)
        ansible = run_playbook(command, work_dir=work, env=env, on_start=collected.start, on_record=collected.record)
    finally:
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
    collect_s = time.monotonic() - t0
    if not ansible.hosts:
        problem = log_problem(ansible.log_path)
        raise UsageError(f"ansible-playbook reached no host (exit code {ansible.returncode})"
                         + (f": {fh.one_line(problem)}" if problem else "")
                         + f"; see {ansible.log_path}", argument="-i")

    outcomes = _outcomes(ansible, out)
    rendered, render, render_s = _render(outcomes, out, workers=workers, host_timeout=host_timeout,
                                         cell_timeout=cell_timeout, kernel_name=kernel_name,
                                         notebooks_dir=notebooks_dir, progress=progress)
    rows = tuple(_finish(outcome, rendered.get(outcome.host), out, started_at, ansible.arrived_s.get(outcome.host))
                 for outcome in outcomes)
    notebook_path = notebook_error = None
    if notebook:
        notebook_path, notebook_error = render_fleet_notebook(out, kernel_name=kernel_name, timeout=cell_timeout)
    return FleetSummary(out_dir=str(out), started_at=started_at, duration_s=time.monotonic() - t0,
                        collect_s=collect_s, render_s=render_s, hosts=rows, ansible=ansible, render=render,
                        notebook_path=notebook_path, notebook_error=notebook_error)


class _Collecting:
    """Progress while Ansible runs: a line per host as its record arrives."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.total = 0
        self.done = 0

    def start(self, hosts: Sequence[str]) -> None:
        self.total = len(hosts)
        if self.progress is not None:
            self.progress(FleetProgress("start", "", "", "", 0, self.total, 0.0))

    def record(self, host: str, record: Mapping[str, Any], seconds: float) -> None:
        self.done += 1
        if self.progress is None:
            return
        status, reason = fh.classify(record)
        normal = fh.normalize_record(record)
        size = normal.get("collect", {}).get("bytes") or 0
        shell = " (shell collector: no Python >= 3.10)" if normal.get("collector") == "shell" else ""
        detail = reason or f"{size // 1024} KB of evidence{shell}"
        self.progress(FleetProgress("collect", host, status, detail, self.done, max(self.total, self.done), seconds))


def _outcomes(ansible: PlaybookRun, out: Path) -> list[fh.Outcome]:
    """Every host's outcome after the collection: classified, its bundle read back, identities checked."""
    from imds_helpers.cli.evidence import read_bundle

    first: list[fh.Outcome] = []
    bundles: dict[str, dict[str, Any]] = {}
    lowered: dict[str, str] = {}
    for host in ansible.hosts:
        record = fh.normalize_record(ansible.records.get(host))
        status, reason = fh.classify(record, ansible.failures.get(host, ""))
        evidence = None
        if status == fh.COLLECTED:
            if host.lower() in lowered:
                status, reason = "collect_failed", fh.one_line(
                    f"inventory name {host!r} differs from {lowered[host.lower()]!r} only by case: one folder on "
                    f"some file systems, and one host for the runner")
            else:
                path = out / host / fh.EVIDENCE_FILE
                try:
                    bundles[host] = read_bundle(path)
                    evidence = str(path)
                except UsageError as err:
                    status, reason = "collect_failed", fh.one_line(f"the bundle does not load: {err}")
        if fh.folder_name_ok(host):
            lowered.setdefault(host.lower(), host)
        first.append(fh.Outcome(host=host, status=status, reason=reason, evidence_path=evidence,
                                record=dict(record or {})))

    twins = fh.same_machines({h: b["host"] for h, b in bundles.items()})
    outcomes = []
    for outcome in first:
        bundle = bundles.get(outcome.host)
        if bundle is None:
            outcomes.append(outcome)
            continue
        ident = fh.bundle_identity(bundle)
        checks = fh.identity_check(ident, fh.expectations(outcome.record))
        problem = fh.identity_problem(checks, twins.get(outcome.host, []), ident)
        notes = fh.collector_notes(outcome.record) + fh.identity_notes(outcome.host, checks, ident)
        status, reason = ("identity_mismatch", problem) if problem else (outcome.status, outcome.reason)
        outcomes.append(fh.Outcome(host=outcome.host, status=status, reason=reason,
                                   evidence_path=outcome.evidence_path, bundle_host=ident, checks=checks,
                                   notes=notes, record=outcome.record))
    for outcome in outcomes:
        folder = _host_folder(out, outcome.host)
        if folder is not None:
            fh.write_record(folder, outcome, alias=outcome.collected)
    return outcomes


def _host_folder(out: Path, host: str) -> Path | None:
    """``OUT/<host>/`` (made if the playbook did not get to it), or None for a name no folder
    can carry (or a folder someone replaced with a link)."""
    from imds_helpers.fleet.runner import _make_real_dir

    if not fh.folder_name_ok(host):
        return None
    try:
        _make_real_dir(out / host)
    except (UsageError, OSError):
        return None
    return out / host


def _kind(bundle_path: str) -> str:
    """The runbook for a bundle: the target it was collected with, or, for ``auto``, the one
    the analysis found ("vm", "arc" or "none")."""
    from imds_helpers.analyze import analyze
    from imds_helpers.cli.evidence import read_bundle

    bundle = read_bundle(Path(bundle_path))
    target = bundle["parameters"].get("target")
    return analyze(bundle).target if target == "auto" else str(target)


def _render(outcomes: Sequence[fh.Outcome], out: Path, *, workers: int, host_timeout: float, cell_timeout: float,
            kernel_name: str, notebooks_dir: str | os.PathLike[str] | None,
            progress: Progress | None) -> tuple[dict[str, Any], RunSummary | None, float]:
    """Each collected host's runbook, from its evidence, by the runner. Returns host -> its
    HostRun, or a dict ``{"status", "error", "report"}`` for a host that no runbook renders."""
    import yaml

    from imds_helpers.fleet import runner

    t0 = time.monotonic()
    done: dict[str, Any] = {}
    files: list[Path] = []
    for outcome in outcomes:
        if not outcome.collected:
            continue
        try:
            kind = _kind(str(outcome.evidence_path))
        except UsageError as err:
            done[outcome.host] = {"status": "collect_failed", "error": fh.one_line(f"the bundle does not load: {err}")}
            continue
        if kind not in NOTEBOOK_FILES:
            done[outcome.host] = {"status": "analyzed", "kind": kind}
            continue
        path = out / outcome.host / PARAMS_FILE
        text = ("# Written by imds-runbook fleet: render this host's report again with\n"
                f"#   imds-runbook run {outcome.host}/{PARAMS_FILE} --out DIR\n"
                + yaml.safe_dump({"host": outcome.host, "target": kind, "evidence_path": fh.EVIDENCE_FILE},
                                 sort_keys=False))
        path.write_text(text, encoding="utf-8")
        try:   # each file on its own: one that cannot render does not stop the others
            runner.plan_hosts([path], notebook="auto", out_dir=out, notebooks_dir=notebooks_dir)
        except UsageError as err:
            done[outcome.host] = {"status": "failed", "error": fh.one_line(f"cannot render the runbook: {err}")}
            continue
        files.append(path)
    if not files:
        return done, None, time.monotonic() - t0
    total = len(files)
    count = [0]

    def tick(row: Any) -> None:
        count[0] += 1
        if progress is not None:
            detail = row.error or (", ".join(row.failing_codes) if row.failing_codes else row.verdict)
            progress(FleetProgress("render", row.host, row.status, detail, count[0], total, row.duration_s))

    summary = runner.run_hosts(files, notebook="auto", out_dir=out, workers=workers, cell_timeout=cell_timeout,
                               host_timeout=host_timeout, kernel_name=kernel_name, notebooks_dir=notebooks_dir,
                               progress=tick)
    for row in summary.rows:
        done[row.host] = row
    return done, summary, time.monotonic() - t0


def _finish(outcome: fh.Outcome, rendered: Any, out: Path, started_at: str, collect_s: float | None) -> FleetHost:
    """The host's sidecar, with what the fleet knows about it (``fleet``), and its row."""
    fleet_block = {"inventory_hostname": outcome.host, "collection": outcome.status, "reason": outcome.reason or None,
                   "bundle_host": dict(outcome.bundle_host), "identity": [c.to_dict() for c in outcome.checks],
                   "notes": list(outcome.notes), "collect_s": None if collect_s is None else round(collect_s, 3),
                   "collector": str(outcome.record.get("collector") or "") or None}
    if rendered is not None and not isinstance(rendered, dict):   # a HostRun: the runbook ran
        path = Path(rendered.sidecar_path)
        try:
            sidecar = read_sidecar(path)
            sidecar["host"] = outcome.host    # the inventory's name, also where the bundle has a longer one
            sidecar["fleet"] = fleet_block
            write_sidecar(path, sidecar)
        except SidecarError:
            pass   # the runner reports it as it is
        return FleetHost(host=outcome.host, status=rendered.status, verdict=rendered.verdict, reason=rendered.error,
                         failing_codes=tuple(rendered.failing_codes), collect_s=collect_s,
                         sidecar_path=rendered.sidecar_path, html_path=rendered.html_path,
                         evidence_path=outcome.evidence_path, outcome=outcome)

    status, reason = outcome.status, outcome.reason
    body: Mapping[str, Any] = {"verdict": "skip", "target": str(outcome.record.get("target") or ""), "endpoint": "",
                               "tally": {"ok": 0, "warn": 0, "fail": 0, "skip": 0}, "platform": {}, "checks": []}
    if isinstance(rendered, dict) and rendered.get("status") == "analyzed":
        # Collected with target auto and neither service answered: no runbook is about that,
        # the analysis is the report.
        from imds_helpers.analyze import analyze
        from imds_helpers.cli.evidence import read_bundle
        from imds_helpers.fleet.sidecar import run_status_for

        report = analyze(read_bundle(Path(str(outcome.evidence_path))))
        body = report.to_dict()
        status, reason = run_status_for(report.verdict.value), f"no runbook for target {rendered['kind']!r}: the analysis is the report"
    elif isinstance(rendered, dict):
        status, reason = rendered["status"], rendered["error"]
    if status not in FLEET_STATUSES and status not in ("ok", "findings", "failed"):
        status = "collect_failed"
    folder = _host_folder(out, outcome.host)
    if folder is None:   # a name no folder can carry: its result sits with Ansible's files
        folder = out / WORK_DIR / "hosts"
        folder.mkdir(exist_ok=True)
        name = f"host-{len(list(folder.glob('host-*.json'))) + 1}"
    else:
        name = outcome.host
    sidecar = build_sidecar(body, host=outcome.host, notebook="fleet",
                            parameters={"inventory_hostname": outcome.host}, started_at=started_at,
                            duration_s=collect_s or 0.0)
    sidecar["run"] = {"status": status, "error": reason or None,
                      "duration_s": round(collect_s or 0.0, 3), "notebook_path": None, "html_path": None}
    sidecar["fleet"] = fleet_block
    path = folder / f"{name}.json"
    write_sidecar(path, sidecar)
    failing = tuple(dict.fromkeys(str(c.get("code", "")) for c in sidecar["checks"] if c.get("status") in ("warn", "fail")))
    return FleetHost(host=outcome.host, status=status, verdict=sidecar["verdict"], reason=reason or None,
                     failing_codes=failing, collect_s=collect_s, sidecar_path=str(path), html_path=None,
                     evidence_path=outcome.evidence_path, outcome=outcome)


# --------------------------------------------------------------------------- the fleet notebook


def render_fleet_notebook(out: Path, *, kernel_name: str = "python3",
                          timeout: float = 120) -> tuple[str | None, str | None]:
    """``OUT/summary.ipynb``: the fleet report notebook executed on the results folder (every
    sidecar under ``out``, as ``imds-runbook report out`` reads it).
    Returns (its path, None) or (None, the one-line reason it could not be made)."""
    source = data_dir("notebooks") / FLEET_NOTEBOOK
    target = out / NOTEBOOK_OUT
    try:
        import papermill as pm

        from imds_helpers.fleet.runner import _ipc_kernel_manager

        with tempfile.TemporaryDirectory(prefix="imds-fleet-kernel-") as scratch:
            pm.execute_notebook(str(source), str(target), parameters={"results_dir": str(out), "csv_path": ""},
                                kernel_name=kernel_name, cwd=str(out), progress_bar=False, log_output=False,
                                execution_timeout=int(math.ceil(timeout)), shutdown_kernel="immediate",
                                kernel_manager_class=_ipc_kernel_manager(scratch))
        return str(target), None
    except Exception as err:   # the summaries are written either way
        return (str(target) if target.exists() else None), fh.one_line(f"{type(err).__name__}: {err}")


__all__ = ["FleetHost", "FleetProgress", "FleetSummary", "build_probe", "render_fleet_notebook", "run_fleet"]
