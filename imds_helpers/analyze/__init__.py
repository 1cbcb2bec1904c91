"""Analysis: the checks run on an evidence bundle - no network, no subprocess, no file system,
no clock. The same bundle gives the same result, byte for byte.

    report = analyze(bundle)        # bundle: a dict from imds_helpers.model.evidence.load()

:class:`EvidenceHost` answers the checks' questions from the bundle's records, through the same
record-to-value functions the live host uses (:mod:`imds_helpers.model.evidence`), so a rule judges
the same values wherever it runs. A question the bundle has no answer for (a bundle from another
collector, or a cut one) is answered "not collected" - a command error, a missing file, an
HTTP request judged IMDS-HTTP-018 - and listed in :attr:`EvidenceHost.misses`.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Mapping, Sequence

from imds_helpers.model import evidence as ev
from imds_helpers.model.catalog import HTTP_NOT_COLLECTED
from imds_helpers.model.evidence import ArcKeyProbe, CommandOutput, Outcome, TcpProbe, Timeouts, Verdict
from imds_helpers.model.findings import Report


class EvidenceHost:
    """A host as a bundle saw it. Records are handed out in the order they were made; asking
    again for something asked once more than it was collected gets the last answer again."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self.os_name: str = bundle["os_name"]
        self.env: dict[str, str] = dict(bundle["environment"])
        self.proxy_url_problems: dict[str, str] = dict(bundle["proxy_url_problems"])
        self.euid: int | None = bundle["identity"]["euid"]
        self._users: dict[str, Any] = dict(bundle["identity"]["users"])
        self._wininet = bundle["wininet"]
        self.misses: list[str] = []
        self._commands = _queues((tuple(r["argv"]), r) for r in bundle["commands"])
        self._files = _queues(((r["op"], r["path"]), r) for r in bundle["files"])
        self._tcp = _queues(((r["host"], r["port"]), r) for r in bundle["tcp"])
        self._http = _queues((_request(r["request"]), r) for r in bundle["http"])
        self._keys = _queues(((r["realm"], r["tokens_dir"]), r) for r in bundle["arc_keys"])

    def __repr__(self) -> str:
        return f"EvidenceHost(os={self.os_name!r})"

    def _take(self, table: dict[Any, deque], key: Any, what: str) -> Mapping[str, Any] | None:
        queue = table.get(key)
        if not queue:
            self.misses.append(what)
            return None
        return queue.popleft() if len(queue) > 1 else queue[0]

    def run(self, argv: Sequence[str], timeout: float = ev.COMMAND_TIMEOUT) -> CommandOutput:
        record = self._take(self._commands, tuple(argv), "command " + " ".join(argv))
        return ev.command_from(record) if record else ev.not_collected_command(argv)

    def read_file(self, path: str, limit: int = 65536) -> tuple[str | None, str | None]:
        record = self._take(self._files, ("read", path), f"file {path}")
        return ev.file_read_from(record) if record else (None, "not_collected")

    def path_kind(self, path: str) -> str:
        record = self._take(self._files, ("kind", path), f"path {path}")
        return record["kind"] if record else "error"

    def glob(self, pattern: str) -> tuple[str, ...]:
        record = self._take(self._files, ("glob", pattern), f"glob {pattern}")
        return tuple(record["paths"] or ()) if record else ()

    def uid_of(self, name: str) -> int | None:
        uid = self._users.get(name)
        return uid if isinstance(uid, int) and not isinstance(uid, bool) else None

    def wininet(self) -> Mapping[str, Any] | None:
        return self._wininet

    def tcp(self, host: str, port: int, timeout: float) -> TcpProbe:
        record = self._take(self._tcp, (host, port), f"tcp {host}:{port}")
        if record is None:
            return TcpProbe(host, port, timeout, resolve_error="not collected")
        return ev.tcp_from(record)

    def client(self, timeouts: Timeouts) -> ReplayClient:
        return ReplayClient(self, via_proxy=False)

    def proxy_client(self, timeouts: Timeouts, endpoint: str) -> ReplayClient:
        return ReplayClient(self, via_proxy=True)

    def arc_key(self, realm: str, tokens_dir: str) -> ArcKeyProbe:
        record = self._take(self._keys, (realm, tokens_dir), f"arc key {realm}")
        if record is None:
            missing = Verdict(HTTP_NOT_COLLECTED, "the key file was not probed when the evidence was collected", {}, False)
            return ArcKeyProbe(realm, tokens_dir, missing)
        return ev.arc_key_from(record)


class ReplayClient:
    """Answers requests with the bundle's recorded exchanges."""

    def __init__(self, host: EvidenceHost, *, via_proxy: bool) -> None:
        self._host = host
        self._via_proxy = via_proxy

    def __enter__(self) -> ReplayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None

    def request(self, url: str, *, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                method: str = "GET", retry: bool = True, retry_statuses: frozenset[int] = ev.RETRY_STATUSES,
                secrets: tuple[str, ...] = (), budget: float | None = None, authorization: str | None = None) -> Outcome:
        key = ev.request_for(url, params=params, headers=headers, method=method, authorization=authorization,
                             via_proxy=self._via_proxy)
        record = self._host._take(self._host._http, key, f"{method} {key.url}")
        return ev.outcome_from(record) if record else ev.not_collected_outcome(key)


def _request(record: Mapping[str, Any]) -> ev.Request:
    return ev.Request(record["url"], record["method"], tuple((str(k), str(v)) for k, v in record["headers"]),
                      bool(record["via_proxy"]))


def _queues(items) -> dict[Any, deque]:
    table: dict[Any, deque] = defaultdict(deque)
    for key, record in items:
        table[key].append(record)
    return dict(table)


def options(bundle: Mapping[str, Any]):
    """The check options the collection ran with, validated as the command line's are
    (:class:`~imds_helpers.model.evidence.BadBundle` names what is wrong)."""
    from imds_helpers.analyze.pipeline import check_options
    from imds_helpers.model.errors import UsageError

    p = bundle["parameters"]
    selectors: dict[str, list[str]] = {"client_id": [], "object_id": [], "msi_res_id": []}
    try:
        for selector, value in p["identities"]:
            if selector not in selectors:
                raise UsageError(f"unknown identity selector {selector[:40]!r}", argument="identities")
            selectors[selector].append(value)
        opts = check_options(target=p["target"], endpoint=p["endpoint"], resources=p["resources"],
                             client_ids=selectors["client_id"], object_ids=selectors["object_id"],
                             msi_res_ids=selectors["msi_res_id"], proxy_comparison=p["proxy_comparison"],
                             tokens_dir=p["tokens_dir"], ama_config_path=p["ama_config_path"])
        from dataclasses import replace

        return replace(opts, timeouts=Timeouts(**p["timeouts"]))
    except (UsageError, ValueError, TypeError) as err:
        raise ev.BadBundle(f"evidence parameters: {err}") from None


def analyze(bundle: Mapping[str, Any]) -> Report:
    """The report the checks give on this evidence (pure: the same bundle, the same report)."""
    return analyze_with_misses(bundle)[0]


def analyze_with_misses(bundle: Mapping[str, Any]) -> tuple[Report, list[str]]:
    from imds_helpers.analyze.pipeline import Pipeline

    host = EvidenceHost(bundle)
    pipeline = Pipeline(options(bundle), host)
    return pipeline.run_all(), host.misses


__all__ = ["EvidenceHost", "ReplayClient", "analyze", "analyze_with_misses", "options"]
