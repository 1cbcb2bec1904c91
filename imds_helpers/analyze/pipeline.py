"""The checks in order, against a host: the live machine (:class:`imds_helpers.collect.LiveHost`)
or its evidence (:class:`imds_helpers.analyze.EvidenceHost`). One function per step, and
:class:`Pipeline` that runs them in order (a visible pipeline, like papermill's ``execute.py``).

A host answers the checks' questions - commands, files, TCP, HTTP, the Arc key file, the
environment - and nothing here touches the machine itself: this module and the steps it calls
never import the transport, the command runner or the collector.

Steps after a failed TCP connect are recorded as SKIP instead of waiting on more timeouts,
so a firewalled IMDS gets its verdict in about one connect timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from imds_helpers.model import validate
from imds_helpers.model.catalog import (HTTP_FORWARDED, HTTP_NOT_IMDS, HTTP_NO_ANSWER, HTTP_RESET, HTTP_TOO_LARGE,
                                  HTTP_TOO_SLOW, HTTP_UNREADABLE, NET_TCP_REFUSED)
from imds_helpers.model.evidence import Timeouts
from imds_helpers.model.findings import CheckResult, Report, Status
from imds_helpers.analyze.tokens import AMA_CONFIG_PATH, DEFAULT_RESOURCES, Identity

if TYPE_CHECKING:
    from imds_helpers.model.evidence import Runner

# Instance-metadata failures that say "whatever answers here cannot serve tokens either":
# asking again would only repeat the same timeout or garbage, so later steps are skipped.
UNUSABLE_SERVICE = frozenset({HTTP_NO_ANSWER, HTTP_RESET, HTTP_TOO_SLOW, HTTP_UNREADABLE,
                              HTTP_TOO_LARGE, HTTP_NOT_IMDS, HTTP_FORWARDED})


@dataclass(frozen=True)
class CheckOptions:
    """What one check run does; build it with :func:`check_options`, which validates."""

    target: str = "auto"                      # auto | vm | arc
    endpoint: str | None = None               # explicit base URL; wins over detection
    resources: tuple[str, ...] = DEFAULT_RESOURCES
    identities: tuple[Identity, ...] = ()     # user-assigned identities to try
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxy_comparison: bool = False            # opt-in: instance metadata through the proxy
    tokens_dir: str | None = None             # Arc key directory (default: the platform's)
    ama_config_path: str = AMA_CONFIG_PATH
    env: Mapping[str, str] | None = field(default=None, repr=False)  # default: os.environ (may hold proxy passwords)
    runner: Runner | None = field(default=None, repr=False, compare=False)  # host commands; default: run when asked


def check_options(
    *,
    target: str = "auto",
    endpoint: str | None = None,
    resources: Sequence[str] = (),
    client_ids: Iterable[str] = (),
    object_ids: Iterable[str] = (),
    msi_res_ids: Iterable[str] = (),
    timeout: float | None = None,
    proxy_comparison: bool = False,
    tokens_dir: str | None = None,
    ama_config_path: str = AMA_CONFIG_PATH,
    env: Mapping[str, str] | None = None,
    runner: Runner | None = None,
) -> CheckOptions:
    """Validated options; bad input raises UsageError naming the argument."""
    pairs = validate.identity_selectors(client_ids, object_ids, msi_res_ids)
    return CheckOptions(
        target=validate.target(target),
        endpoint=validate.endpoint_url(endpoint) if endpoint else None,
        resources=tuple(validate.resource_uri(r) for r in resources) or DEFAULT_RESOURCES,
        identities=tuple(Identity(selector, value) for selector, value in pairs),
        timeouts=Timeouts.from_total(validate.timeout_s(timeout)) if timeout is not None else Timeouts(),
        proxy_comparison=bool(proxy_comparison),
        tokens_dir=tokens_dir,
        ama_config_path=ama_config_path,
        env=env,
        runner=runner,
    )



def platform_step(opts: CheckOptions, host: Any):
    """Step 1: which platform, which endpoint and why (PlatformResult)."""
    from imds_helpers.analyze.platform import detect_platform

    # IMDS_RUNBOOK_ENDPOINT is read (and named in the reason) by detect_platform alone.
    return detect_platform(opts.target, opts.endpoint, host=host)


def proxy_step(opts: CheckOptions, host: Any, endpoint: str) -> tuple[CheckResult, ...]:
    """Step 2: proxy variables and what clients that honour them would do."""
    from imds_helpers.analyze.proxy import analyze_proxy, windows_proxy_inputs

    winhttp, wininet = windows_proxy_inputs(host)   # (None, None) off Windows
    results = list(analyze_proxy(endpoint, env=host.env, winhttp_output=winhttp, wininet=wininet,
                                 os_name=host.os_name, url_problems=host.proxy_url_problems).checks)
    if opts.proxy_comparison:
        from imds_helpers.analyze.proxy_compare import compare_through_proxy

        with host.proxy_client(opts.timeouts, endpoint) as client:
            results.append(compare_through_proxy(endpoint, client, env=host.env, url_problems=host.proxy_url_problems,
                                                 service="arc" if opts.target == "arc" else "vm"))
    return tuple(results)


def network_step(opts: CheckOptions, host: Any, endpoint: str) -> tuple[CheckResult, ...]:
    """Step 3: route, TCP connect, firewall rules."""
    from imds_helpers.analyze.network import network_checks

    return tuple(network_checks(endpoint, timeout=opts.timeouts.connect, machine=host))


def instance_step(opts: CheckOptions, host: Any, endpoint: str, *, service: str,
                  smbios_uuid: str | None = None) -> tuple[CheckResult, ...]:
    """Step 4: the guide's instance-metadata request and the newest version."""
    from imds_helpers.analyze.metadata import check_instance

    with host.client(opts.timeouts) as client:
        return check_instance(client, endpoint, service=service, smbios_uuid=smbios_uuid)


def token_step(opts: CheckOptions, host: Any, endpoint: str) -> tuple[CheckResult, ...]:
    """Step 5 (VM): system-assigned, user-assigned and AMA's configured identity."""
    from imds_helpers.analyze.tokens import check_vm_tokens, read_ama_identity

    with host.client(opts.timeouts) as client:
        return check_vm_tokens(client, endpoint, resources=opts.resources, identities=opts.identities,
                               ama_identity=read_ama_identity(host, opts.ama_config_path))


def arc_environment_step(opts: CheckOptions, host: Any) -> CheckResult:
    """Step 6a (Arc): IDENTITY_ENDPOINT / IMDS_ENDPOINT as this process sees them."""
    from imds_helpers.analyze.arc import check_arc_environment

    return check_arc_environment(host.env, host=host)


def arc_challenge_step(opts: CheckOptions, host: Any, endpoint: str, tokens_dir: str) -> tuple[CheckResult, ...]:
    """Step 6b (Arc): the 401 -> realm -> key file -> Basic -> token chain, one result per step."""
    from imds_helpers.analyze.arc import check_arc_token

    selector = {i.selector: i.value for i in opts.identities[:1]}
    with host.client(opts.timeouts) as client:
        return tuple(check_arc_token(client, endpoint, keys=host, resource=opts.resources[0], tokens_dir=tokens_dir,
                                     **selector))


def skipped(check_id: str, reason: str) -> CheckResult:
    return CheckResult(id=check_id, code="-", status=Status.SKIP, title="Not attempted", detail=reason)


def default_tokens_dir(opts: CheckOptions, host: Any) -> str:
    """The Arc key directory: the option, else the platform's."""
    from imds_helpers.analyze.arc import default_tokens_dir as platform_default

    return opts.tokens_dir or platform_default("win32" if host.os_name == "windows" else "linux", host.env)


class Pipeline:
    """The steps one at a time against ``host``: what a check runs in one go and what a runbook
    runs cell by cell. Each step returns its results and keeps them for the report."""

    def __init__(self, opts: CheckOptions, host: Any) -> None:
        self.opts = opts
        self.host = host
        self.tokens_dir = default_tokens_dir(opts, host)
        self.platform = platform_step(opts, host)
        self.endpoint: str = self.platform.endpoint
        self.target: str = self.platform.target
        self.results: list[CheckResult] = list(self.platform.checks)

    def _keep(self, results: Iterable[CheckResult]) -> tuple[CheckResult, ...]:
        results = tuple(results)
        self.results.extend(results)
        return results

    def _blocked(self) -> str | None:
        """Why later HTTP steps cannot succeed, if an earlier result already shows it."""
        for check in self.results:
            if check.id == "network.tcp" and check.status is Status.FAIL:
                return f"TCP connect failed ({check.code})"
            if check.id == "metadata.instance" and check.code in UNUSABLE_SERVICE:
                return f"the service's answers are unusable ({check.code} in metadata.instance)"
        return None

    def _unless_blocked(self, check_ids: Sequence[str], run) -> tuple[CheckResult, ...]:
        reason = self._blocked()
        if reason is not None:
            return self._keep(skipped(check_id, reason) for check_id in check_ids)
        return self._keep(run())

    def proxy(self) -> tuple[CheckResult, ...]:
        return self._keep(proxy_step(self.opts, self.host, self.endpoint))

    def network(self) -> tuple[CheckResult, ...]:
        return self._keep(network_step(self.opts, self.host, self.endpoint))

    def instance(self) -> tuple[CheckResult, ...]:
        service = "arc" if self.target == "arc" else "vm"
        smbios = self.platform.evidence.get("smbios_uuid") if service == "vm" else None
        return self._unless_blocked(["metadata.instance"],
                                    lambda: instance_step(self.opts, self.host, self.endpoint, service=service,
                                                          smbios_uuid=smbios))

    def tokens(self) -> tuple[CheckResult, ...]:
        return self._unless_blocked(["token"], lambda: token_step(self.opts, self.host, self.endpoint))

    def arc_environment(self) -> tuple[CheckResult, ...]:
        return self._keep([arc_environment_step(self.opts, self.host)])

    def arc_challenge(self) -> tuple[CheckResult, ...]:
        run = lambda: arc_challenge_step(self.opts, self.host, self.endpoint, self.tokens_dir)  # noqa: E731
        if self._himds_refused():
            # A refusal costs nothing to repeat, and with no firewall rule behind it it means
            # HIMDS is not listening: the challenge step names that (IMDS-ARC-010, its fix).
            return self._keep(run())
        return self._unless_blocked(["arc.challenge"], run)

    def _himds_refused(self) -> bool:
        """The TCP connect was refused and no firewall rule found blocks or rejects it."""
        by_id = {check.id: check for check in self.results}
        tcp, firewall = by_id.get("network.tcp"), by_id.get("network.firewall")
        return (tcp is not None and tcp.code == NET_TCP_REFUSED
                and (firewall is None or firewall.status in (Status.OK, Status.SKIP)))

    def run_all(self) -> Report:
        self.proxy()
        self.network()
        if self.target == "arc":
            self.arc_environment()
            self.instance()
            self.arc_challenge()
        else:
            self.instance()
            self.tokens()
        return self.report()

    def report(self) -> Report:
        return Report(target=self.target, endpoint=self.endpoint, checks=tuple(self.results),
                      platform=self.platform.to_dict())
