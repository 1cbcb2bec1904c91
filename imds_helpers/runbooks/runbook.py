"""What the runbooks call: parameter validation, the pipeline step by step, styled tables,
and the sidecar JSON. Notebooks stay thin: one call per cell, the result is the cell's value.

    rb = runbook.start("vm", globals())   # validates the parameters cell; stops with one line
    rb.platform()                          # each step returns a table of its results (colours)
    ...
    rb.save()                              # sidecar JSON for `imds-runbook report` (+ the evidence)
    rb.verdict()                           # code, status, explanation, fix (caption: where saved)

With ``evidence_path`` (a bundle from ``imds-runbook collect`` on some host) every step renders
from that bundle instead: the same prose, tables and verdict, no request, and the report carries
the bundle's host name. A live run keeps its own bundle next to the sidecar
(``<host>.evidence.json``), so any report can be rendered again anywhere.

Parameters are one table (``PARAMETERS``): each notebook's parameters cell (what papermill's
``--help-notebook`` shows) and parameters/<runbook>-defaults.yaml are generated from it, and the
runner validates YAML files with :func:`validate_parameters` before it starts a kernel.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from imds_helpers.model import validate
from imds_helpers.model.errors import UsageError
from imds_helpers.model.findings import Report
from imds_helpers.fleet.sidecar import check_host_name, local_host_name
from imds_helpers.runbooks.tables import ResultTable
from imds_helpers.analyze.tokens import DEFAULT_RESOURCES

if TYPE_CHECKING:
    from imds_helpers.api import CheckOptions
    from imds_helpers.collect.hostcmd import CommandPrefetch

NOTEBOOKS = {"vm": "01_azure_vm_imds", "arc": "02_arc_himds"}
# Prefetched host command output older than this is read again: a runbook run cell by cell
# may reach the firewall step minutes later, after someone changed the rules.
PREFETCH_MAX_AGE_S = 5.0
MAX_TEXT_CHARS = 4096      # a text parameter or list entry (a URL, a path, an ARM resource id)
MAX_LIST_ITEMS = 100       # resources / identities per run


class PerRunbook(dict):
    """A default or help text that differs by runbook: ``PerRunbook(vm=..., arc=...)``."""


@dataclass(frozen=True)
class Param:
    """One runbook parameter: type, default and help. The notebooks' parameters cells and
    parameters/<runbook>-defaults.yaml are generated from these rows (notebooks/build_notebooks.py),
    and tests/core/test_parameter_table.py fails when either drifts from them."""

    name: str
    kind: type | tuple[type, ...]
    default: Any                      # or PerRunbook(vm=..., arc=...)
    help: str | PerRunbook
    runbooks: tuple[str, ...] = ("vm", "arc")

    def default_for(self, runbook: str) -> Any:
        """A fresh copy: a caller that changes a list never changes the table."""
        return copy.deepcopy(self.default[runbook] if isinstance(self.default, PerRunbook) else self.default)

    def help_for(self, runbook: str) -> str:
        return self.help[runbook] if isinstance(self.help, PerRunbook) else self.help

    @property
    def annotation(self) -> str:
        """The type a parameters cell declares (papermill shows it): int|float is float."""
        return (self.kind[-1] if isinstance(self.kind, tuple) else self.kind).__name__


# The Arc challenge gets one token (a key file serves one request), so the Arc runbook checks
# one audience, the first of DEFAULT_RESOURCES, as `imds-runbook check --target arc` does.
ARC_RESOURCES = DEFAULT_RESOURCES[:1]

PARAMETERS: tuple[Param, ...] = (
    Param("host_name", str, "", "label in reports; empty: this machine's hostname (imds-runbook run refuses "
          "another machine's name without its evidence_path)"),
    Param("evidence_path", str, "",
          "a bundle from `imds-runbook collect` on that host; empty: collect live on this machine"),
    Param("endpoint", str, "", PerRunbook(
        vm="IMDS base URL; empty: detect (http://169.254.169.254) or $IMDS_RUNBOOK_ENDPOINT",
        arc="HIMDS base URL; empty: detect (http://localhost:40342) or $IMDS_RUNBOOK_ENDPOINT")),
    Param("resources", list, PerRunbook(vm=list(DEFAULT_RESOURCES), arc=list(ARC_RESOURCES)), PerRunbook(
        vm="token audiences: management (the guide's) and monitor (the one AMA uses)",
        arc="token audience: one, requested through the challenge (the guide's)")),
    Param("client_ids", list, [], "user-assigned identities by client id", ("vm",)),
    Param("object_ids", list, [], "user-assigned identities by object id", ("vm",)),
    Param("msi_res_ids", list, [], "user-assigned identities by ARM resource id", ("vm",)),
    Param("tokens_dir", str, "", "Arc key directory; empty: the platform's (/var/opt/azcmagent/tokens, "
          "Windows %ProgramData%\\AzureConnectedMachineAgent\\Tokens)", ("arc",)),
    Param("timeout_s", (int, float), 10.0, "time budget per step in seconds (connect 2 s, read 5 s inside it)"),
    Param("proxy_comparison", bool, False, "also fetch instance metadata THROUGH the configured proxy (never a token)"),
    Param("emulator_scenario", str, "", "training: serve this emulator scenario in-process and check it"),
    Param("sidecar_path", str, "", "JSON result path; empty: results/<host_name>.json"),
    Param("target", str, PerRunbook(vm="vm", arc="arc"),
          "this runbook (vm|arc); in a parameter file it picks the runbook for `imds-runbook run --notebook auto`"),
)
# Names IPython itself puts into a notebook's namespace (never parameters).
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def parameter_names(kind: str) -> list[str]:
    return [p.name for p in PARAMETERS if kind in p.runbooks]


def validate_parameters(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in; unknown keys, wrong types and malformed values raise UsageError."""
    known = {p.name: p for p in PARAMETERS if kind in p.runbooks}
    for name in params:
        if name not in known:
            close = validate.closest_name(name, known)
            hint = f" (did you mean {close!r}?)" if close else f" (known: {', '.join(known)})"
            raise UsageError(f"unknown parameter {name!r}{hint}", argument="parameters")
    values = {name: params[name] if name in params else p.default_for(kind) for name, p in known.items()}
    for name, p in known.items():
        value = values[name]
        if value is None:
            value = values[name] = p.default_for(kind)
        if isinstance(value, bool) and p.kind is not bool or not isinstance(value, p.kind):
            hint = ""
            if p.kind is list and isinstance(value, str) and value.lstrip().startswith("[") \
                    and len(value) <= validate.SHOWN_CHARS:
                hint = (f" (papermill -p passes text; use -y '{name}: {value}' or a -f parameter file)")
            raise UsageError(f"must be {_type_name(p.kind)}, got {type(value).__name__} {validate.shown(value)}{hint}",
                             argument=name)
        if p.kind is list and not all(isinstance(v, str) for v in value):
            raise UsageError("must be a list of strings", argument=name)
        _check_size(name, value)
    if values["host_name"]:   # it names the sidecar (results/<host_name>.json): never a path
        values["host_name"] = check_host_name(values["host_name"], argument="host_name")
    if values["endpoint"]:
        values["endpoint"] = validate.endpoint_url(values["endpoint"], argument="endpoint")
    values["resources"] = [validate.resource_uri(r, argument="resources") for r in values["resources"]] \
        or known["resources"].default_for(kind)
    if kind == "arc" and len(values["resources"]) > 1:
        raise UsageError(f"the Arc runbook checks one audience (the challenge gets one token), got "
                         f"{len(values['resources'])}", argument="resources")
    values["timeout_s"] = validate.timeout_s(values["timeout_s"], argument="timeout_s")
    if kind == "vm":
        validate_selectors(values)
    if values["target"] not in ("", "vm", "arc"):
        raise UsageError(f"must be vm or arc, got {validate.shown(values['target'])}", argument="target")
    if values["target"] not in ("", kind):
        raise UsageError(f"is {values['target']!r}, but this is the {kind} runbook ({NOTEBOOKS[kind]})",
                         argument="target")
    if values["emulator_scenario"]:
        if values["evidence_path"]:
            raise UsageError("set either emulator_scenario (training on an emulated host) or evidence_path "
                             "(a host's collected evidence), not both", argument="evidence_path")
        _check_scenario(kind, values["emulator_scenario"])
    return values


def same_host(a: str, b: str) -> bool:
    """Whether two host names name one machine: case-insensitively equal, or a short name
    equal to the first label of the other (a fully qualified) name."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    if ("." in a) != ("." in b):
        short, full = (b, a) if "." in a else (a, b)
        return full.split(".", 1)[0] == short
    return False


# parameter -> collect's option: what the host must collect for this file's report
_COLLECT_OPTIONS = (("resources", "--resource"), ("client_ids", "--client-id"), ("object_ids", "--object-id"),
                    ("msi_res_ids", "--msi-res-id"), ("tokens_dir", "--tokens-dir"), ("endpoint", "--endpoint"))


def collect_command(params: Mapping[str, Any], host: str, kind: str = "") -> str:
    """The ``imds-runbook collect`` line that gathers what these parameters ask for."""
    import shlex

    words = ["imds-runbook", "collect"] + (["--target", kind] if kind in ("vm", "arc") else [])
    for name, option in _COLLECT_OPTIONS:
        value = params.get(name)
        for item in (value if isinstance(value, list) else [value] if isinstance(value, str) and value else []):
            words += [option, str(item)]
    if params.get("timeout_s") not in (None, ""):
        words += ["--timeout", str(params["timeout_s"])]
    if params.get("proxy_comparison") is True:
        words.append("--proxy-comparison")
    return " ".join(shlex.quote(w) for w in words + ["--out", f"{host}.json"])


def another_machine(params: Mapping[str, Any], host: str, kind: str) -> str | None:
    """Why a live run may not carry ``host``'s name, or None: a runbook checks the machine it
    runs on, so a report about another machine must render that machine's evidence
    (``evidence_path``). Training (``emulator_scenario``) may use any label."""
    if params.get("evidence_path") or params.get("emulator_scenario"):
        return None
    from imds_helpers.fleet.sidecar import local_host_name

    here = local_host_name()
    if same_host(host, here):
        return None
    return (f"names host {host!r}, but this machine is {here!r}, and a runbook checks the machine it runs on: "
            f"run `{collect_command(params, host, kind)}` on {host}, then set evidence_path: {host}.json")


def read_evidence(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle ``values["evidence_path"]`` names (validated parameters), checked against
    this runbook: read safely (:func:`imds_helpers.cli.evidence.read_bundle`), its host name is
    a safe one and agrees with ``host_name`` (a report never carries another machine's name -
    unless ``imds-runbook fleet`` vouched, beside the bundle, that ``host_name`` is the inventory
    name of the machine it collected it from: :func:`imds_helpers.fleet.fleet_hosts.inventory_alias`),
    and it holds evidence of this runbook's target. One-line UsageError otherwise."""
    from imds_helpers.cli.evidence import read_bundle

    path = Path(values["evidence_path"])
    try:
        bundle = read_bundle(path)
    except UsageError as err:     # read_bundle names its CLI argument; here it is the parameter
        raise UsageError(str(err).split(": ", 1)[-1], argument="evidence_path") from None
    hostname = bundle["host"]["hostname"]
    try:
        check_host_name(hostname, argument=None)
    except UsageError as err:
        raise UsageError(f"{path}: the bundle's {err}", argument="evidence_path") from None
    given = values.get("host_name") or ""
    if given and not same_host(given, hostname) and not _vouched(path, given, bundle):
        raise UsageError(f"is {given!r}, but {path} was collected on {hostname!r}; a report never carries "
                         f"another machine's name (leave host_name empty or set it to {hostname!r})",
                         argument="host_name")
    from imds_helpers.analyze import analyze, options

    collected = bundle["parameters"].get("target")
    try:
        options(bundle)   # the parameters it was collected with: what the steps will run with
        target = analyze(bundle).target if collected == "auto" else collected
    except UsageError as err:
        raise UsageError(f"{path}: {err}", argument="evidence_path") from None
    if target != kind:
        hint = f"; render it with the {target} runbook ({NOTEBOOKS[target]})" if target in NOTEBOOKS else ""
        raise UsageError(f"{path} holds {validate.shown(target)} evidence (collected with target "
                         f"{validate.shown(collected)}), but this is the {kind} runbook{hint}",
                         argument="evidence_path")
    return bundle


def _vouched(path: Path, host_name: str, bundle: Mapping[str, Any]) -> bool:
    from imds_helpers.fleet.fleet_hosts import inventory_alias   # only for a name that differs

    return inventory_alias(path, host_name, bundle)


def _check_size(name: str, value: Any) -> None:
    """Text parameters are short and without NUL (which no file name, URL or
    environment value can carry); lists are short."""
    texts = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    if len(texts) > MAX_LIST_ITEMS:
        raise UsageError(f"at most {MAX_LIST_ITEMS} entries, got {len(texts)}", argument=name)
    for text in texts:
        if len(text) > MAX_TEXT_CHARS or "\x00" in text:
            raise UsageError(f"must be at most {MAX_TEXT_CHARS} characters without NUL, got "
                             f"{validate.shown(text)}", argument=name)


def validate_selectors(values: Mapping[str, Any]) -> None:
    try:
        validate.identity_selectors(values["client_ids"], values["object_ids"], values["msi_res_ids"])
    except UsageError as err:  # name the parameter, not the CLI flag
        message = str(err).split(": ", 1)[-1]
        flag = (err.argument or "").lstrip("-").replace("-", "_")
        raise UsageError(message, argument=f"{flag}s" if flag else "identities") from None


def _check_scenario(kind: str, name: str) -> None:
    from imds_helpers.emulator import SCENARIOS

    if name not in SCENARIOS:
        close = validate.closest_name(name, SCENARIOS)
        raise UsageError(f"unknown scenario {validate.shown(name)}" + (f" (did you mean {close!r}?)" if close else ""),
                         argument="emulator_scenario")
    if SCENARIOS[name].mode != kind:
        raise UsageError(f"scenario {name!r} is for the {SCENARIOS[name].mode} runbook", argument="emulator_scenario")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "list": "a list", "bool": "true/false", "int": "a number", "float": "a number"}
    return " or ".join(dict.fromkeys(names[k.__name__] for k in kinds))   # int|float: "a number", once


def parameters_from_namespace(kind: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-like globals of a notebook: its parameters cell plus papermill's injected one."""
    json_like = (str, int, float, bool, list, dict, type(None))
    return {
        name: value for name, value in namespace.items()
        if not name.startswith("_") and name not in _IPYTHON_NAMES and isinstance(value, json_like)
    }


class Runbook:
    """One runbook run: validated parameters, the pipeline session and the sidecar."""

    def __init__(self, kind: str, params: Mapping[str, Any]) -> None:
        self.kind = kind
        self.params = validate_parameters(kind, params)
        # The bundle this report renders (None: a live run on this machine).
        self.evidence: dict[str, Any] | None = (
            read_evidence(kind, self.params) if self.params["evidence_path"] else None)
        self.started_at = _now_iso()
        self._t0 = time.monotonic()
        self._emulator = None
        self._commands: CommandPrefetch | None = None
        self._saved = ""
        from imds_helpers.api import Session

        if self.evidence is not None:   # no request, no command, no emulator: the bundle answers
            self.host = self.evidence["host"]["hostname"]
            # An inventory name the fleet vouched for (read_evidence accepted it): the report's name.
            if self.params["host_name"] and not same_host(self.params["host_name"], self.host):
                self.host = self.params["host_name"]
            self.session = Session(evidence=self.evidence)
            self.options: CheckOptions = self.session.opts
            return
        self.host = self.params["host_name"] or local_host_name()
        # Host commands (service state, firewall rules) run while Python imports the steps.
        from imds_helpers.collect import hostcmd   # live runs only

        self._commands = hostcmd.CommandPrefetch(hostcmd.evidence_commands(), max_age=PREFETCH_MAX_AGE_S)
        try:
            self.options = self._options()
            self.session = Session(self.options)
        except BaseException:
            self.close()
            raise

    def _options(self) -> CheckOptions:
        from imds_helpers.api import check_options

        endpoint = self.params["endpoint"] or None
        tokens_dir = self.params.get("tokens_dir") or None
        if self.params["emulator_scenario"]:
            self._emulator = _start_emulator(self.kind, self.params["emulator_scenario"])
            endpoint = self._emulator.base_url
            tokens_dir = str(self._emulator.key_dir) if self.kind == "arc" else None
        return check_options(
            target=self.kind, endpoint=endpoint, resources=self.params["resources"],
            client_ids=self.params.get("client_ids", ()), object_ids=self.params.get("object_ids", ()),
            msi_res_ids=self.params.get("msi_res_ids", ()), timeout=self.params["timeout_s"],
            proxy_comparison=self.params["proxy_comparison"], tokens_dir=tokens_dir, runner=self._commands,
        )

    def subject(self) -> str:
        """One line naming the host a report rendered from evidence is about (its name, vmId,
        resource id, when and where the evidence was collected); empty for a live run, which
        is about this machine."""
        if self.evidence is None:
            return ""
        ident = self.evidence["host"]
        collected_on = f" (inventory name; collected on {ident['hostname']})" if self.host != ident["hostname"] else ""
        parts = [f"host {self.host}{collected_on}"] + [f"{label} {_bounded(ident.get(key))}" for key, label in
                                         (("vmId", "vmId"), ("resourceId", "resource"), ("os", "os"))
                                         if ident.get(key)]
        return (" · ".join(parts) + f" · rendered from the evidence in {_bounded(self.params['evidence_path'])}"
                f", collected {_bounded(self.evidence['started_at'])}: no request left this machine")

    # -- steps: each returns a ResultTable of its results ---------------------------------
    def platform(self) -> ResultTable:
        """The platform step; from evidence, its caption names the host (see :meth:`subject`)."""
        return table(self.session.platform.checks, caption=self.subject())

    def proxy(self) -> ResultTable:
        return table(self.session.proxy())

    def network(self) -> ResultTable:
        return table(self.session.network())

    def instance(self) -> ResultTable:
        return table(self.session.instance())

    def tokens(self) -> ResultTable:
        return table(self.session.tokens())

    def arc_environment(self) -> ResultTable:
        return table(self.session.arc_environment())

    def arc_challenge(self) -> ResultTable:
        return table(self.session.arc_challenge())

    # -- the end -----------------------------------------------------------------------
    def report(self) -> Report:
        return self.session.report()

    def verdict(self) -> ResultTable:
        """The closing table; after :meth:`save` its caption says where the result went."""
        return verdict_table(self.report(), caption=self._saved)

    def save(self) -> str:
        """Write the sidecar JSON (atomically) and stop the embedded emulator, if any. A live
        run also writes its evidence bundle beside it (:func:`evidence_file`)."""
        from imds_helpers.fleet.sidecar import build_sidecar, write_sidecar

        path = Path(self.params["sidecar_path"] or Path("results") / f"{self.host}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        started_at, duration_s = self.started_at, time.monotonic() - self._t0
        if self.evidence is None:
            from imds_helpers.cli.evidence import write_bundle

            bundle, source = self.session.bundle(), evidence_file(path)
            write_bundle(source, bundle)
            where = f"; evidence in {source} (render it again anywhere with evidence_path)"
        else:   # the report is about when the evidence was collected, not when it was rendered
            bundle, source = self.evidence, Path(self.params["evidence_path"])
            started_at, duration_s = _iso_seconds(bundle["started_at"], started_at), bundle["duration_ms"] / 1000
            where = f", rendered from the evidence in {source}"
        sidecar = build_sidecar(
            self.report(), host=self.host, notebook=NOTEBOOKS[self.kind], parameters=self.params,
            started_at=started_at, duration_s=duration_s,
        )
        sidecar["evidence"] = evidence_summary(bundle, source, live=self.evidence is None)
        write_sidecar(path, sidecar)
        self.close()
        self._saved = f"{self.report().verdict.value.upper()}: result written to {path}{where}"
        return self._saved

    def close(self) -> None:
        if self._commands is not None:
            self._commands.close()
        if self._emulator is not None:
            self._emulator.close()
            self._emulator = None


def start(kind: str, namespace: Mapping[str, Any]) -> Runbook:
    """Validate the notebook's parameters and start a run (raises a one-line UsageError)."""
    if kind not in NOTEBOOKS:
        raise UsageError(f"runbook kind must be vm or arc, got {kind!r}")
    return Runbook(kind, parameters_from_namespace(kind, namespace))


def evidence_file(sidecar_path: Path) -> Path:
    """Where a live run keeps its bundle: ``<host>.evidence.json`` beside ``<host>.json``."""
    return sidecar_path.with_name(f"{sidecar_path.stem}.evidence.json")


def evidence_summary(bundle: Mapping[str, Any], path: Path, *, live: bool) -> dict[str, Any]:
    """The sidecar's ``evidence`` object: which bundle the report was judged on and whose it is."""
    ident = bundle["host"]
    return {"source": "live" if live else "bundle", "path": str(path), "hostname": ident["hostname"],
            "vmId": ident.get("vmId"), "resourceId": ident.get("resourceId"),
            "collected_at": bundle["started_at"]}


def _bounded(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _iso_seconds(text: str, fallback: str) -> str:
    """A bundle's start time in the sidecar's form (UTC, seconds, ``Z``)."""
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return fallback
    if when.tzinfo is None:
        return fallback
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _start_emulator(kind: str, scenario: str):
    from imds_helpers.emulator import Emulator

    emulator = Emulator(mode=kind, scenario=scenario)
    emulator.__enter__()
    return emulator


def _now_iso() -> str:
    from imds_helpers.fleet.sidecar import now_iso

    return now_iso()


# -- rendering: self-rendering tables, no pandas in a per-host kernel (see tables.py) --------
STEP_COLUMNS = ("status", "code", "id", "title", "detail")
VERDICT_COLUMNS = ("status", "code", "id", "title", "explanation", "fix")


def table(results, caption: str = "") -> ResultTable:
    """A step's results with pass/fail colours and a stable id (diff-friendly HTML)."""
    results = tuple(results)
    name = "imds-" + "-".join(r.id.replace(".", "_") for r in results[:2])
    return ResultTable.from_dicts(name, (r.to_dict() for r in results), STEP_COLUMNS, caption=caption)


def verdict_table(report: Report, caption: str = "") -> ResultTable:
    """The closing table: every check with code, status, explanation and fix."""
    return ResultTable.from_dicts("imds-verdict", (c.to_dict() for c in report.checks), VERDICT_COLUMNS,
                                  caption=caption)
