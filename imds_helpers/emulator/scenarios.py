"""The one table of emulator scenarios (fault injection). Adding a case is adding a row.

Each row: ``name``, ``mode`` (vm | arc), a one-line ``description`` and ``settings`` - data
that the service (:mod:`imds_helpers.emulator.service`) interprets. Unset settings take the
values in ``DEFAULTS``. Any setting can be overridden per run:
``Emulator(scenario=..., scenario_params={...})``, ``emu.set_scenario(name, **params)`` or
``imds-runbook emulator --param KEY=VALUE`` (VALUE parsed as JSON when it can be).

Settings
--------
Machine / service shape
  ``system_assigned`` (bool)      the machine has a system-assigned identity
  ``user_assigned`` (int 0..3)    how many user-assigned identities are assigned
  ``unknown_resources`` (bool)    every ``resource`` is rejected with AADSTS500011
  ``max_api_version`` (str|None)  the service only knows versions <= this one
  ``loadbalancer`` (bool)         /metadata/loadbalancer has Standard-LB data (else E18 404)
  ``scheduled_events`` (tuple)    event types pending in /metadata/scheduledevents
  ``token_delay`` (float s)       the token endpoint thinks this long before answering
Canned answers
  ``respond`` (Answer | tuple[Answer, ...] | None)
      one Answer: every matching request gets it; a tuple: the n-th matching request *per
      category* gets the n-th Answer, later ones are served normally.
  ``categories`` (tuple|None)     categories ``respond`` applies to (None: all, unknown paths too)
  ``stage`` ("early"|"valid")     early: before any protocol check; valid: only to requests
                                  that passed header/api-version checks (so probes don't count)
  ``for_seconds`` (float|None)    ``respond`` only during the first N s after the scenario started
Transport / body faults (applied to every answer)
  ``transport``: None | "blackhole" (connections are never completed: the listen queue is
      kept full, so the kernel drops every SYN - what a firewall DROP rule looks like from
      the client) | "reset" (RST via SO_LINGER 0 after reading the request) | "hang"
      (accept, never read or answer) | "slow_drip" (headers, then the body 1 byte per
      ``drip_interval`` s) | "slow_headers" (the status line, then the headers and the body
      1 byte per ``drip_interval`` s) | "truncate" (Content-Length larger than the bytes sent,
      then close)
  ``body``: None | "malformed_json" | "oversized" (valid JSON padded to ``oversized_bytes``)
Arc (HIMDS)
  ``realm``: "default" | "outside" | "not_key" | "traversal" | "symlink_out" | "fifo" |
      "dev_zero" | "directory" | "huge_file" | "with_equals"  (where the challenge points)
  ``challenge_header`` (bool)     send WWW-Authenticate with the 401
  ``key_size`` (int|None)         pad the key file (and secret) to this many bytes
  ``key_unreadable`` (bool)       key file mode 0000, owner 65534:65534 when running as root
  ``reject_secrets`` (bool)       every secret is rejected with a fresh 401 challenge
  ``after_challenge`` (Answer|None) answer sent instead of a token once the secret is right
  ``legacy_selectors`` (bool)     old agent: ignore client_id/object_id/msi_res_id, no echo
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from imds_helpers.emulator import protocol as P
from imds_helpers.model.errors import UsageError


@dataclass(frozen=True)
class Answer:
    """A canned HTTP answer. ``identity_body`` replaces ``body`` for identity categories."""

    status: int
    body: Any = b""                      # dict/list -> compact JSON; str/bytes as is
    identity_body: Any = None
    content_type: str = P.JSON_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    imds_headers: bool = True            # add the service's usual Server header
    http_version: str = "HTTP/1.1"
    reason: str | None = None            # None: the standard phrase


DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "system_assigned": True,
    "user_assigned": None,               # None: 1 in vm mode, 0 in arc mode
    "unknown_resources": False,
    "max_api_version": None,
    "loadbalancer": True,
    "scheduled_events": (),
    "token_delay": 0.0,
    "respond": None,
    "categories": None,
    "stage": "early",
    "for_seconds": None,
    "transport": None,
    "drip_interval": 1.0,
    "body": None,
    "oversized_bytes": 8 * 1024 * 1024,
    "realm": "default",
    "challenge_header": True,
    "key_size": None,
    "key_unreadable": False,
    "reject_secrets": False,
    "after_challenge": None,
    "legacy_selectors": False,
})


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.settings[key] if key in self.settings else DEFAULTS[key]

    def with_params(self, **params: Any) -> "Scenario":
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise UsageError(f"unknown scenario parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(DEFAULTS))}")
        return Scenario(self.name, self.mode, self.description, {**self.settings, **params})

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "mode": self.mode, "description": self.description}


def _row(name: str, mode: str, description: str, **settings: Any) -> Scenario:
    unknown = set(settings) - set(DEFAULTS)
    assert not unknown, f"{name}: unknown settings {unknown}"
    assert "\n" not in description
    return Scenario(name, mode, description, MappingProxyType(settings))


_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Network Login Required</title></head>\n"
    "<body><h1>Welcome to Corp-Guest Wi-Fi</h1><p>Please sign in to continue.</p>\n"
    '<form method="post" action="/login"><input name="user"><input type="password" name="pw">'
    "</form></body></html>\n"
)

_ROWS: tuple[Scenario, ...] = (
    # ----- VM (Azure IMDS) --------------------------------------------------------------------
    _row("vm-healthy", "vm",
         "Azure VM, IMDS healthy: system-assigned identity plus one user-assigned identity"),
    _row("vm-no-identity", "vm",
         "No managed identity assigned: every token request gets 400 'Identity not found'",
         system_assigned=False, user_assigned=0),
    _row("vm-user-assigned-only", "vm",
         "One user-assigned identity and no system-assigned one (IMDS then picks the UAMI "
         "when no selector is sent)",
         system_assigned=False, user_assigned=1),
    _row("vm-multiple-user-assigned", "vm",
         "Three user-assigned identities, no system-assigned: token requests without a "
         "selector get 400 'Multiple user assigned identities exist'",
         system_assigned=False, user_assigned=3),
    _row("vm-unknown-resource", "vm",
         "Every resource is rejected with 400 invalid_resource AADSTS500011 (e.g. a sovereign-"
         "cloud VM asked for public-cloud audiences)",
         unknown_resources=True),
    _row("vm-throttled", "vm",
         "Every request answered 429 Too Many Requests with Retry-After",
         respond=Answer(429, P.TOO_MANY, P.TOO_MANY_IDENTITY,
                        headers=(("Retry-After", P.RETRY_AFTER_SECONDS),))),
    _row("vm-updating", "vm",
         "IMDS is being updated: every request gets 410 Gone for for_seconds (default 3), "
         "then the service is healthy",
         respond=Answer(410, P.UPDATING, P.UPDATING_IDENTITY), for_seconds=3.0),
    _row("vm-transient-5xx", "vm",
         "The first two valid requests per endpoint get 500 then 503, later ones succeed",
         respond=(Answer(500, P.SERVER_ERROR, P.SERVER_ERROR_IDENTITY),
                  Answer(503, P.UNAVAILABLE, P.UNAVAILABLE_IDENTITY)),
         stage="valid"),
    _row("vm-token-404-then-ok", "vm",
         "The first valid token request gets 404 (identity endpoint not ready), then tokens "
         "are issued",
         respond=(Answer(404, P.TOKEN_NOT_READY, P.TOKEN_NOT_READY),),
         categories=("token",), stage="valid"),
    _row("vm-identity-propagating", "vm",
         "A new identity assignment is still propagating: valid token requests get 400 "
         "'Identity not found' for for_seconds (default 30), then tokens are issued",
         respond=Answer(400, P.IDENTITY_NOT_FOUND, P.IDENTITY_NOT_FOUND),
         # 30 s (real propagation takes minutes): long enough that a diagnosis on a busy
         # machine still meets the propagation window; tests that want recovery shorten it.
         categories=("token",), stage="valid", for_seconds=30.0),
    _row("vm-forwarded-rejected", "vm",
         "A transparent proxy adds X-Forwarded-For, so IMDS rejects every request with 400",
         respond=Answer(400, P.FORWARDED, P.FORWARDED_IDENTITY)),
    _row("vm-malformed-json", "vm",
         "Every answer is 200-style JSON that does not parse (broken syntax, right length)",
         body="malformed_json"),
    _row("vm-truncated-body", "vm",
         "Every answer declares a Content-Length larger than the bytes sent, then the "
         "connection closes",
         transport="truncate"),
    _row("vm-oversized-body", "vm",
         "Every answer is valid JSON padded to several MB (oversized_bytes, default 8 MiB)",
         body="oversized"),
    _row("vm-not-imds-html", "vm",
         "Something else answers: a captive-portal HTML page with 200 and no IMDS Server header",
         respond=Answer(200, _HTML, _HTML, content_type="text/html; charset=utf-8",
                        headers=(("Server", "squid/5.7"),), imds_headers=False)),
    _row("vm-docker-desktop-403", "vm",
         "Docker Desktop's proxy answers 403 'connecting to 169.254.169.254:80 ... unreachable "
         "network'",
         respond=Answer(403, {"error": P.DOCKER_DESKTOP_MESSAGE}, {"error": P.DOCKER_DESKTOP_MESSAGE},
                        imds_headers=False, http_version="HTTP/1.0",
                        reason=P.DOCKER_DESKTOP_MESSAGE, headers=(("Connection", "close"),))),
    _row("vm-connection-reset", "vm",
         "The TCP connection is reset (RST) after every request is read",
         transport="reset"),
    _row("vm-firewalled", "vm",
         "IMDS is firewalled: connection attempts are never answered (SYNs dropped, as behind an iptables DROP rule)",
         transport="blackhole"),
    _row("vm-accept-then-hang", "vm",
         "TCP connections are accepted but never answered (a black hole past the handshake)",
         transport="hang"),
    _row("vm-slow-drip", "vm",
         "Headers arrive at once, then the body trickles 1 byte per drip_interval (default 1 s)",
         transport="slow_drip"),
    # CHOICE: 0.5 s per byte stays inside any per-read timeout, and the ~200 bytes of headers
    # then take minutes: only a deadline on the whole answer ends the wait.
    _row("vm-slow-headers", "vm",
         "The status line arrives at once, then the headers trickle 1 byte per drip_interval (0.5 s here)",
         transport="slow_headers", drip_interval=0.5),
    _row("vm-old-api-versions", "vm",
         "An older IMDS that only knows api-versions <= 2019-06-04: newer ones get 400 with "
         "newest-versions",
         max_api_version="2019-06-04"),
    _row("vm-persistent-5xx", "vm",
         "The token endpoint keeps failing with 500 'Failed to retrieve token from the Active "
         "directory'",
         respond=Answer(500, P.SERVER_ERROR, P.SERVER_ERROR_IDENTITY), categories=("token",),
         stage="valid"),
    _row("vm-no-loadbalancer", "vm",
         "The VM sits behind no Standard load balancer: /metadata/loadbalancer gives 404",
         loadbalancer=False),
    _row("vm-scheduled-maintenance", "vm",
         "A Freeze event is pending in /metadata/scheduledevents (acknowledge it with POST)",
         scheduled_events=("Freeze",)),
    # ----- Arc (HIMDS) -----------------------------------------------------------------------
    _row("arc-healthy", "arc",
         "Arc-enabled server, HIMDS healthy: system-assigned identity, 401 challenge with a "
         "key file in the tokens directory"),
    _row("arc-no-challenge-header", "arc",
         "The first token request gets 401 without a WWW-Authenticate header",
         challenge_header=False),
    _row("arc-realm-outside-tokens-dir", "arc",
         "The challenge realm names a .key file in another directory (a fresh temp dir)",
         realm="outside"),
    _row("arc-realm-not-key", "arc",
         "The challenge realm names a file in the tokens directory without the .key extension",
         realm="not_key"),
    _row("arc-realm-traversal", "arc",
         "The realm climbs out of the tokens directory: <tokensdir>/../../etc/<guid>.key",
         realm="traversal"),
    _row("arc-realm-symlink-out", "arc",
         "The realm is a .key symlink in the tokens directory that points outside it",
         realm="symlink_out"),
    _row("arc-realm-fifo", "arc",
         "The realm is a FIFO named <guid>.key in the tokens directory (reading it blocks)",
         realm="fifo"),
    _row("arc-realm-dev-zero", "arc",
         "The realm is /dev/zero (endless, not a regular file)",
         realm="dev_zero"),
    _row("arc-realm-directory", "arc",
         "The realm is a directory named <guid>.key in the tokens directory",
         realm="directory"),
    _row("arc-realm-huge-file", "arc",
         "The realm is a sparse 1 GiB .key file in the tokens directory",
         realm="huge_file"),
    _row("arc-realm-with-equals", "arc",
         "The realm value is quoted and its file name contains '=' (breaks split('=') parsers)",
         realm="with_equals"),
    _row("arc-key-too-large", "arc",
         "The key file is 5000 bytes, above the 4096-byte limit clients enforce",
         key_size=5000),
    _row("arc-key-unreadable", "arc",
         "The key file has mode 0000 (and owner 65534 when the emulator runs as root)",
         key_unreadable=True),
    _row("arc-wrong-secret", "arc",
         "Every secret is rejected: the second request gets a fresh 401 challenge",
         reject_secrets=True),
    _row("arc-agent-disconnected", "arc",
         "The agent is disconnected/expired: after a correct challenge, 403 'certificate has "
         "expired, reconnect the machine'",
         after_challenge=Answer(P.ARC_DISCONNECTED_STATUS, P.ARC_DISCONNECTED, P.ARC_DISCONNECTED,
                                imds_headers=False)),
    _row("arc-unknown-resource", "arc",
         "After a correct challenge every resource is rejected with 400 invalid_resource "
         "AADSTS500011",
         unknown_resources=True),
    _row("arc-legacy-agent", "arc",
         "An old agent: user-assigned selectors are ignored and the system-assigned token is "
         "returned without echoing the selector",
         legacy_selectors=True),
)

#: name -> Scenario, in table order.
SCENARIOS: Mapping[str, Scenario] = MappingProxyType({row.name: row for row in _ROWS})
assert len(SCENARIOS) == len(_ROWS), "duplicate scenario name"

DEFAULT_SCENARIO = {"vm": "vm-healthy", "arc": "arc-healthy"}
MODES = ("vm", "arc")


def get_scenario(name: str | None, mode: str | None = None) -> Scenario:
    """The scenario ``name`` (default: the mode's healthy one), checked against ``mode``.

    Raises :class:`UsageError` naming close matches for an unknown name, or for a row of the
    other mode.
    """
    if mode is not None and mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose vm or arc", argument="--mode")
    if name is None:
        return SCENARIOS[DEFAULT_SCENARIO[mode or "vm"]]
    scenario = SCENARIOS.get(name)
    if scenario is None:
        close = difflib.get_close_matches(name, list(SCENARIOS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see --list"
        raise UsageError(f"unknown scenario {name!r}{hint}", argument="--scenario")
    if mode is not None and scenario.mode != mode:
        raise UsageError(f"scenario {name!r} is for {scenario.mode} mode, not {mode}",
                         argument="--scenario")
    return scenario
