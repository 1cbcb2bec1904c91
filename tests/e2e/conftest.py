"""End-to-end runs of the real runbooks; each happens once per session, the tests assert on
what they leave behind.

``matrix_run``     ``imds-runbook run`` (the installed CLI, a subprocess) over
                   ``parameters/training/<scenario>.yaml`` for every row of
                   tests/matrix/fault_matrix.MATRIX without extra arguments; 2 workers.
                   It starts in the background when the first test of this folder starts,
                   so the runs below overlap it (many matrix hosts wait on sockets, not CPU).
``fleet_run``      the CLI over a few hosts while this process SIGKILLs one host's kernel in
                   the middle of a cell (as the OOM killer would).
``endpoint_runs``  plain papermill at the REAL default endpoints: emulators own
                   169.254.169.254:80 and 127.0.0.1:40342 (private namespace only).

Order inside this folder: fleet, real endpoints, matrix, leaks (the leak scan needs every
run's artefacts; the matrix run is then already done or nearly so).

Outside tests/isolated.sh's namespace the runner subprocesses get ``IMDS_RUNBOOK_ENDPOINT``
pointing at a closed loopback port: every runbook here has an emulator endpoint, and one
that lost it would still never send a packet to the real 169.254.169.254.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from matrix.fault_matrix import MATRIX, Case

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
TRAINING = REPO / "parameters" / "training"
VM_NOTEBOOK = NOTEBOOKS / "01_azure_vm_imds.ipynb"
ARC_NOTEBOOK = NOTEBOOKS / "02_arc_himds.ipynb"
NETNS = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
TOKENS_DIR = "/var/opt/azcmagent/tokens"
TOKENS_DIR_PRIVATE = os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") == "1"
NOT_IN_NETNS = ("needs tests/isolated.sh's private network namespace: these runs use the REAL "
                "169.254.169.254:80 and localhost:40342")
DEAD_ENDPOINT = "http://127.0.0.1:9"   # discard port: nothing listens there

#: The rows a committed training file expresses (rows with extra CLI arguments have none).
RUNBOOK_CASES: tuple[Case, ...] = tuple(c for c in MATRIX if not c.args)
assert len({c.scenario for c in RUNBOOK_CASES}) == len(RUNBOOK_CASES), "one argument-free row per scenario"

_ORDER = ("test_fleet_lifetime.py", "test_runbook_real_endpoints.py", "test_runbook_matrix.py",
          "test_no_leaks.py")
_NEEDS_MATRIX = {"test_runbook_matrix.py", "test_no_leaks.py"}
_state: dict[str, Any] = {"want_matrix": False}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    slots = [k for k, item in enumerate(items) if Path(item.path).resolve().parent == here]
    mine = [items[k] for k in slots]
    rank = {name: i for i, name in enumerate(_ORDER)}
    for k, item in zip(slots, sorted(mine, key=lambda i: rank.get(Path(i.path).name, len(_ORDER)))):
        items[k] = item


def pytest_collection_finish(session: pytest.Session) -> None:
    # After -k / -m deselection: start the background matrix run only if a test will use it.
    _state["want_matrix"] = any(Path(i.path).name in _NEEDS_MATRIX
                                and Path(i.path).resolve().parent == Path(__file__).resolve().parent
                                for i in session.items)


# --------------------------------------------------------------------------- helpers


def cli_command() -> list[str]:
    """The installed ``imds-runbook`` console script next to this interpreter."""
    script = Path(sys.executable).with_name("imds-runbook")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "imds_helpers"]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("IMDS_RUNBOOK_ENDPOINT", "IDENTITY_ENDPOINT", "IMDS_ENDPOINT")}
    if not NETNS:
        env["IMDS_RUNBOOK_ENDPOINT"] = DEAD_ENDPOINT
    env.update(extra)
    return env


def host_of(param_file: Path) -> str:
    """The host name the runner derives from a parameter file (``host``/``host_name``/stem)."""
    data = yaml.safe_load(param_file.read_text(encoding="utf-8")) or {}
    return str(data.get("host") or data.get("host_name") or param_file.stem)


@dataclass
class CliRun:
    """One ``imds-runbook run`` subprocess and where it wrote."""

    out: Path
    stdout_path: Path
    stderr_path: Path
    hosts: dict[str, Any] = field(default_factory=dict)   # host -> Case (or None)
    returncode: int | None = None
    duration_s: float = 0.0
    process: Any = None
    t0: float = 0.0

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def host_dir(self, host: str) -> Path:
        return self.out / host

    def sidecar(self, host: str) -> dict:
        return json.loads((self.out / host / f"{host}.json").read_text(encoding="utf-8"))

    def wait(self, timeout: float) -> "CliRun":
        if self.returncode is None:
            try:
                self.returncode = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(self.process)
                pytest.fail(f"imds-runbook run did not finish within {timeout:g} s (killed); see {self.stderr_path}")
            self.duration_s = time.monotonic() - self.t0
        return self


def start_cli(root: Path, param_files: list[Path], *, workers: int = 2, host_timeout: float = 120) -> CliRun:
    run = CliRun(out=root / "out", stdout_path=root / "cli.stdout", stderr_path=root / "cli.stderr")
    run.hosts = {host_of(p): None for p in param_files}
    with open(run.stdout_path, "wb") as out, open(run.stderr_path, "wb") as err:
        run.t0 = time.monotonic()
        run.process = subprocess.Popen(
            [*cli_command(), "run", *map(str, param_files), "--workers", str(workers),
             "--out", str(run.out), "--timeout", str(host_timeout), "--cell-timeout", "60"],
            cwd=root, env=child_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True)   # its own process group: killable with everything it started
    return run


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a subprocess we started, if still running, and everything below it (runner
    workers and kernels have process groups of their own), each by pid."""
    if process.poll() is not None:
        return
    pids: list[int] = []
    with contextlib.suppress(Exception):
        import psutil

        pids = [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    process.wait(10)


# --------------------------------------------------------------------------- the matrix run


#: Hosts that mostly wait on a socket (timeouts, retries, drips) run first: they leave the CPU
#: to the runs that overlap the start of the matrix run, and the CPU-bound rest then finishes
#: alone. Only an ordering; a scenario missing here simply runs later. Timing-coupled rows
#: (vm-identity-propagating: its token request must come within 3 s of the emulator's start)
#: stay out of the contended first part on purpose.
SLOW_FIRST = ("vm-throttled", "vm-persistent-5xx", "vm-transient-5xx", "vm-slow-drip", "vm-slow-headers",
              "vm-truncated-body", "vm-accept-then-hang", "vm-connection-reset", "vm-firewalled", "vm-updating",
              "vm-unknown-resource")


@pytest.fixture(scope="session", autouse=True)
def _matrix_in_background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRun | None]:
    if not _state["want_matrix"]:
        yield None
        return
    root = tmp_path_factory.mktemp("matrix")
    cases = sorted(RUNBOOK_CASES, key=lambda c: SLOW_FIRST.index(c.scenario) if c.scenario in SLOW_FIRST
                   else len(SLOW_FIRST))
    files = [TRAINING / f"{c.scenario}.yaml" for c in cases if (TRAINING / f"{c.scenario}.yaml").is_file()]
    run = start_cli(root, files)
    run.hosts = {host_of(TRAINING / f"{c.scenario}.yaml"): c for c in RUNBOOK_CASES
                 if (TRAINING / f"{c.scenario}.yaml").is_file()}
    yield run
    kill_group(run.process)   # only if still running (an interrupted session)


@pytest.fixture(scope="session")
def matrix_run(_matrix_in_background: CliRun | None) -> CliRun:
    assert _matrix_in_background is not None
    run = _matrix_in_background.wait(timeout=400)
    print(f"\nmatrix run: {len(run.hosts)} hosts in {run.duration_s:.1f} s (exit {run.returncode})")
    return run


# --------------------------------------------------------------------------- the fleet run


FLEET_VICTIM = "fleet-victim"
FLEET_OTHERS = ("vm-healthy", "arc-healthy", "vm-no-identity")
VICTIM_CELL = "rb.instance()"   # killed while this cell waits on a server that never answers


@dataclass
class FleetRun:
    cli: CliRun
    killed_pid: int | None
    killed_after_s: float | None
    victim_cell_status: str | None


def _cell_status(nb_path: Path, source: str) -> str | None:
    """papermill status of the code cell with ``source`` in a partial notebook (saved at
    every cell start and end), or None while it cannot be read."""
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        text = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "code" and text.strip() == source:
            return cell.get("metadata", {}).get("papermill", {}).get("status")
    return None


def _kernel_of(process: subprocess.Popen, host_dir: Path) -> int | None:
    """Pid of the ipykernel started (somewhere below ``process``) with cwd ``host_dir``."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            if any("ipykernel" in part for part in child.cmdline()) and Path(child.cwd()) == host_dir:
                return child.pid
        except psutil.Error:
            continue
    return None


@pytest.fixture(scope="session")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> FleetRun:
    pytest.importorskip("psutil", reason="finds the victim's kernel among the runner's processes")
    root = tmp_path_factory.mktemp("fleet")
    victim = root / f"{FLEET_VICTIM}.yaml"
    victim.write_text(
        "# A host whose kernel is killed mid-run (the test sends SIGKILL while a cell waits)\n"
        f"target: vm\nhost_name: {FLEET_VICTIM}\nemulator_scenario: vm-accept-then-hang\ntimeout_s: 30\n",
        encoding="utf-8")
    others = [TRAINING / f"{s}.yaml" for s in FLEET_OTHERS]
    run = start_cli(root, [victim, *others])
    run.hosts = {FLEET_VICTIM: None, **{host_of(p): next(c for c in RUNBOOK_CASES if c.scenario == s)
                                         for s, p in zip(FLEET_OTHERS, others)}}
    host_dir = (run.out / FLEET_VICTIM).resolve()
    killed_pid = killed_after = status = None
    deadline = time.monotonic() + 120
    try:
        while run.process.poll() is None and time.monotonic() < deadline:
            status = _cell_status(host_dir / f"{FLEET_VICTIM}.ipynb", VICTIM_CELL)
            if status == "running":
                pid = _kernel_of(run.process, host_dir)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed_pid, killed_after = pid, time.monotonic() - run.t0
                    break
            time.sleep(0.05)
        run.wait(timeout=180)
    finally:
        kill_group(run.process)
    print(f"\nfleet run: {len(run.hosts)} hosts in {run.duration_s:.1f} s, kernel {killed_pid} of "
          f"{FLEET_VICTIM} killed {killed_after or 0:.1f} s in, exit {run.returncode}")
    return FleetRun(cli=run, killed_pid=killed_pid, killed_after_s=killed_after, victim_cell_status=status)


# --------------------------------------------------------------------------- real endpoints


@dataclass
class EndpointRun:
    name: str
    scenario: str | None
    notebook: Path              # executed notebook
    sidecar_path: Path
    error: Any                  # PapermillExecutionError or None
    requests: list[dict]        # what the emulator saw during this run
    parameters: dict = field(default_factory=dict)
    identities: dict = field(default_factory=dict)
    stdout: str = ""            # papermill CLI only
    stderr: str = ""
    returncode: int | None = None

    @property
    def sidecar(self) -> dict:
        return json.loads(self.sidecar_path.read_text(encoding="utf-8"))


@dataclass
class EndpointRuns:
    root: Path
    runs: dict[str, EndpointRun]
    canaries: tuple[str, ...]
    tokens_issued: int


VM_SCENARIOS = ("vm-healthy", "vm-no-identity", "vm-forwarded-rejected")
ARC_SCENARIOS = ("arc-healthy", "arc-wrong-secret", "arc-realm-symlink-out")
UAMI_SCENARIO = "vm-multiple-user-assigned"   # no system identity, three user-assigned ones


@contextlib.contextmanager
def _clean_environment() -> Iterator[None]:
    """The kernels inherit this process's environment: no endpoint overrides in it."""
    saved = {k: os.environ.pop(k) for k in ("IMDS_RUNBOOK_ENDPOINT", "IDENTITY_ENDPOINT", "IMDS_ENDPOINT")
             if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="session")
def endpoint_runs(tmp_path_factory: pytest.TempPathFactory) -> EndpointRuns:
    """Every real-endpoint run, done here with the emulators up; they are closed (and the real
    addresses free again for nbval's runbook cells) before any test looks at the results."""
    if not NETNS:
        pytest.skip(NOT_IN_NETNS)
    import papermill as pm

    from imds_helpers.emulator import Emulator

    root = tmp_path_factory.mktemp("real-endpoints")
    runs: dict[str, EndpointRun] = {}

    def papermill_api(name: str, notebook: Path, emu: Any, scenario: str | None, **parameters: Any) -> EndpointRun:
        before = len(emu.request_log)
        run = EndpointRun(name=name, scenario=scenario, notebook=root / f"{name}.ipynb",
                          sidecar_path=root / f"{name}.json", error=None, requests=[], parameters=parameters)
        try:   # what `papermill IN OUT -p sidecar_path ... -p host_name ...` does
            pm.execute_notebook(str(notebook), str(run.notebook),
                                parameters={"sidecar_path": str(run.sidecar_path), "host_name": name, **parameters},
                                kernel_name="python3", cwd=str(root), progress_bar=False, log_output=False,
                                shutdown_kernel="immediate")
        except pm.PapermillExecutionError as err:
            run.error = err
        run.requests = emu.request_log[before:]
        runs[name] = run
        return run

    with _clean_environment(), \
            Emulator(mode="vm", host="169.254.169.254", port=80) as vm, \
            contextlib.ExitStack() as stack:
        arc = (stack.enter_context(Emulator(mode="arc", host="127.0.0.1", port=40342, key_dir=TOKENS_DIR))
               if TOKENS_DIR_PRIVATE else None)
        for scenario in VM_SCENARIOS:
            vm.set_scenario(scenario)
            papermill_api(scenario, VM_NOTEBOOK, vm, scenario)
        if arc is not None:
            for scenario in ARC_SCENARIOS:
                arc.set_scenario(scenario)
                papermill_api(scenario, ARC_NOTEBOOK, arc, scenario)

        # A host file like parameters/hosts/web-01.yaml, naming two of the emulator's identities.
        vm.set_scenario(UAMI_SCENARIO)
        identities = vm.identities
        first, second = identities["user_assigned"][:2]
        host_file = root / "web-01.yaml"
        host_file.write_text(yaml.safe_dump({
            "target": "vm", "host_name": "web-01", "client_ids": [first["client_id"]],
            "msi_res_ids": [second["msi_res_id"]], "resources": ["https://monitor.azure.com/"],
            "timeout_s": 8}, sort_keys=False), encoding="utf-8")
        params = yaml.safe_load(host_file.read_text(encoding="utf-8"))   # = papermill -f web-01.yaml
        uami = papermill_api("web-01", VM_NOTEBOOK, vm, UAMI_SCENARIO, **params)
        uami.identities = identities

        # Bad parameters stop the first cell. Once through the papermill command line itself
        # (-p passes the text, not a list), then a malformed list and an unknown name.
        vm.set_scenario("vm-healthy")
        before = len(vm.request_log)
        cli = EndpointRun(name="bad-cli", scenario=None, notebook=root / "bad-cli.ipynb",
                          sidecar_path=root / "bad-cli.json", error=None, requests=[])
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("papermill")), str(VM_NOTEBOOK), str(cli.notebook),
             "-p", "client_ids", '["not-a-guid"]', "-p", "sidecar_path", str(cli.sidecar_path),
             "-p", "host_name", "bad-cli", "--no-progress-bar"],
            cwd=root, env=child_env(), capture_output=True, text=True, timeout=120)
        cli.returncode, cli.stdout, cli.stderr = proc.returncode, proc.stdout, proc.stderr
        cli.requests = vm.request_log[before:]
        runs["bad-cli"] = cli
        papermill_api("bad-guid", VM_NOTEBOOK, vm, None, client_ids=["not-a-guid"])
        papermill_api("bad-name", VM_NOTEBOOK, vm, None, client_id=first["client_id"])

        canaries = (vm.canary,) + ((arc.canary,) if arc is not None else ())
        log = vm.request_log + (arc.request_log if arc is not None else [])
        tokens_issued = sum(1 for e in log if e["status"] == 200 and "token" in (e["path"] or ""))
    return EndpointRuns(root=root, runs=runs, canaries=canaries, tokens_issued=tokens_issued)
