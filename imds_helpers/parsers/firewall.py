"""Firewall rules (from iptables or nftables) and what they do to one TCP connection.

The question is narrow: for a new TCP connection from this host to ``address:port``, does
any output hook drop or reject it, for which users, and is it redirected (DNAT) somewhere
else? Rules are evaluated in order per chain, following jumps, for a few user classes
(root, each uid an owner match names, everyone else). Matches we cannot decide from here
(marks, sets, limits, interfaces we do not know) make a rule *conditional*: it is reported,
never silently assumed to match or not.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# Actions after which evaluation of the chain stops.
TERMINAL = frozenset({"ACCEPT", "DROP", "REJECT", "DNAT", "REDIRECT", "RETURN", "JUMP", "GOTO", "OTHER"})
BLOCKING = frozenset({"DROP", "REJECT"})
REDIRECTING = frozenset({"DNAT", "REDIRECT"})
_MAX_DEPTH = 16
OTHER_USERS_UID = 65534   # stands for "a user no rule names" (nobody)


@dataclass(frozen=True)
class FirewallRule:
    """One rule, read from iptables or nftables, with the matches that matter here."""

    source: str                               # "iptables" | "iptables-list" | "nft"
    table: str                                # "filter", "nat", ... ("" = unknown)
    chain: str
    text: str
    destinations: tuple[str, ...] = ()        # CIDRs, ranges "a-b", or names; () = any
    destination_negated: bool = False
    sources: tuple[str, ...] = ()
    source_negated: bool = False
    protocol: str | None = None               # None = any
    protocol_negated: bool = False
    dports: tuple[tuple[int, int], ...] = ()  # inclusive ranges; () = any
    dports_negated: bool = False
    dports_unknown: bool = False              # a port spec we could not read (service name, set)
    out_interface: str | None = None
    out_interface_negated: bool = False
    uid_owner: str | None = None              # "0", "root", "1000-2000", "syslog"
    uid_negated: bool = False
    ctstates: tuple[str, ...] = ()
    ctstate_negated: bool = False
    ipv6_only: bool = False
    conditions: tuple[str, ...] = ()          # matches we do not evaluate
    action: str = "NONE"                      # ACCEPT DROP REJECT DNAT REDIRECT RETURN JUMP GOTO OTHER CONTINUE NONE
    target: str = ""                          # chain name for JUMP/GOTO, raw target otherwise
    to_destination: str | None = None
    reject_with: str | None = None

    def mentions(self, address: str) -> bool:
        """The rule names ``address`` (or a range containing it) as destination or DNAT target."""
        if any(_covers(d, address) for d in self.destinations):
            return True
        return bool(self.to_destination and self.to_destination.split(":")[0] == address)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "table": self.table, "chain": self.chain, "action": self.action,
                "target": self.target, "to_destination": self.to_destination, "uid_owner": self.uid_owner,
                "uid_negated": self.uid_negated, "conditions": list(self.conditions), "text": self.text}


@dataclass(frozen=True)
class Chain:
    """A chain: its hook and policy decide where evaluation starts and ends."""

    table: str
    name: str
    hook: str = ""          # "output", "prerouting", ... ; "" for user chains
    type: str = ""          # "filter", "nat", "route", "mangle", "raw", "security"
    policy: str = ""        # "ACCEPT" / "DROP" ; "" for user chains


@dataclass(frozen=True)
class Ruleset:
    """Everything one tool printed: rules, chains, and what could not be read."""

    kind: str                                  # "rules" | "empty" | "unrecognised"
    source: str                                # "iptables" | "iptables-list" | "nft"
    rules: tuple[FirewallRule, ...] = ()
    chains: tuple[Chain, ...] = ()
    skipped_lines: int = 0
    iptables_nft_tables: tuple[str, ...] = ()  # nft tables that only mirror iptables-nft rules

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "rule_count": len(self.rules),
                "skipped_lines": self.skipped_lines, "iptables_nft_tables": list(self.iptables_nft_tables)}


@dataclass(frozen=True)
class Packet:
    """The first packet (SYN) of a new TCP connection from this host."""

    address: str
    port: int
    source: str | None = None         # the route's source address, when known
    out_interface: str | None = None  # the route's device, when known


@dataclass(frozen=True)
class UserVerdict:
    """What happens to the connection for one class of user."""

    uid: str                 # "0", "1000", or "other"
    label: str               # "root", "uid 1000 (syslog)", "other users"
    verdict: str             # "accept" | "drop" | "reject" | "other"
    decided_by: str          # rule text or "policy DROP (filter/OUTPUT)" or "no rule"

    def to_dict(self) -> dict[str, str]:
        return {"uid": self.uid, "label": self.label, "verdict": self.verdict, "decided_by": self.decided_by}


@dataclass(frozen=True)
class Redirect:
    """A DNAT/REDIRECT rule that sends the connection somewhere else."""

    text: str
    chain: str
    to: str
    applies_to: str          # "this host's processes" | "containers and pods (PREROUTING)" | caller unknown

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "chain": self.chain, "to": self.to, "applies_to": self.applies_to}


@dataclass(frozen=True)
class FirewallAnalysis:
    """What the rules do to one connection, per user class."""

    kind: str   # "blocked" | "owner_restricted" | "redirected" | "conditional" | "clear"
    verdicts: tuple[UserVerdict, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    conditional: tuple[str, ...] = ()     # blocking rules whose match we could not decide
    mentions: tuple[str, ...] = ()        # every rule that names the address
    rule_count: int = 0

    @property
    def allowed(self) -> tuple[UserVerdict, ...]:
        return tuple(v for v in self.verdicts if v.verdict == "accept")

    @property
    def blocked(self) -> tuple[UserVerdict, ...]:
        return tuple(v for v in self.verdicts if v.verdict in ("drop", "reject"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "verdicts": [v.to_dict() for v in self.verdicts],
                "redirects": [r.to_dict() for r in self.redirects], "conditional": list(self.conditional),
                "mentions": list(self.mentions), "rule_count": self.rule_count}


# --- matching ------------------------------------------------------------------------------

def _covers(spec: str, address: str) -> bool | None:
    """Does a destination spec (CIDR, address, range "a-b") contain ``address``? None = unknown."""
    spec = spec.strip()
    if spec in ("anywhere", "0.0.0.0/0"):
        return True
    try:
        target = ipaddress.ip_address(address)
    except ValueError:
        return None
    if "-" in spec and "/" not in spec:
        low, _, high = spec.partition("-")
        try:
            return ipaddress.ip_address(low) <= target <= ipaddress.ip_address(high)
        except (ValueError, TypeError):
            return None
    try:
        net = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        return None
    return net.version == target.version and target in net


def _any_covers(specs: tuple[str, ...], address: str | None) -> bool | None:
    if not specs:
        return True
    if address is None:
        return True if any(s in ("anywhere", "0.0.0.0/0") for s in specs) else None
    results = [_covers(s, address) for s in specs]
    if any(r is True for r in results):
        return True
    return None if any(r is None for r in results) else False


def _negate(value: bool | None, negated: bool) -> bool | None:
    return value if value is None or not negated else not value


def _uid_matches(spec: str, uid: int, names: Mapping[str, int]) -> bool | None:
    low, sep, high = spec.strip().partition("-")
    lo = _uid_value(low, names)
    hi = _uid_value(high, names) if sep else lo
    if lo is None or hi is None:
        return None   # a user name we could not resolve
    return lo <= uid <= hi


def _uid_value(text: str, names: Mapping[str, int]) -> int | None:
    text = text.strip()
    if text in names:
        return names[text]
    return int(text) if text.isdigit() and text.isascii() and len(text) < 10 else None


def _iface_matches(pattern: str, iface: str | None) -> bool | None:
    if iface is None:
        return None
    pattern = pattern.strip('"')
    if pattern.endswith(("+", "*")):
        return iface.startswith(pattern[:-1])
    return iface == pattern


def rule_matches(rule: FirewallRule, packet: Packet, uid: int, names: Mapping[str, int]) -> bool | None:
    """True / False, or None when the rule depends on something we cannot see."""
    if rule.ipv6_only and ":" not in packet.address:
        return False
    checks: list[bool | None] = []
    if rule.protocol is not None:
        checks.append(_negate(rule.protocol.lower() in ("tcp", "6", "all", "0", "ip"), rule.protocol_negated))
    checks.append(_negate(_any_covers(rule.destinations, packet.address), rule.destination_negated))
    checks.append(_negate(_any_covers(rule.sources, packet.source), rule.source_negated))
    if rule.dports_unknown:
        checks.append(None)
    elif rule.dports:
        checks.append(_negate(any(lo <= packet.port <= hi for lo, hi in rule.dports), rule.dports_negated))
    if rule.out_interface is not None:
        checks.append(_negate(_iface_matches(rule.out_interface, packet.out_interface), rule.out_interface_negated))
    if rule.uid_owner is not None:
        checks.append(_negate(_uid_matches(rule.uid_owner, uid, names), rule.uid_negated))
    if rule.ctstates:
        # The SYN of a new connection is in state NEW.
        checks.append(_negate("new" in (s.lower() for s in rule.ctstates), rule.ctstate_negated))
    if rule.conditions:
        checks.append(None)
    if any(c is False for c in checks):
        return False
    return None if any(c is None for c in checks) else True


# --- evaluation ----------------------------------------------------------------------------

class _Walk:
    """Evaluates chains for one packet and one user, collecting undecidable matches."""

    def __init__(self, rules_by_chain: dict[tuple[str, str], list[FirewallRule]], packet: Packet, uid: int,
                 names: Mapping[str, int]) -> None:
        self.rules_by_chain, self.packet, self.uid, self.names = rules_by_chain, packet, uid, names
        self.conditional: list[str] = []

    def chain(self, table: str, name: str, depth: int = 0) -> tuple[str | None, FirewallRule | None]:
        if depth > _MAX_DEPTH:
            return None, None
        for rule in self.rules_by_chain.get((table, name), ()):
            if rule.action not in TERMINAL:
                continue
            match = rule_matches(rule, self.packet, self.uid, self.names)
            if match is False:
                continue
            if match is None:
                if rule.action in BLOCKING | REDIRECTING | {"JUMP", "GOTO"}:
                    self.conditional.append(rule.text)
                continue
            if rule.action == "RETURN":
                return None, None
            if rule.action in ("JUMP", "GOTO"):
                verdict, decided = self.chain(table, rule.target, depth + 1)
                if verdict is not None or rule.action == "GOTO":
                    return verdict, decided
                continue
            return rule.action.lower(), rule
        return None, None


def _reachable(rules: Iterable[FirewallRule], table: str, start: str) -> set[str]:
    jumps: dict[str, set[str]] = {}
    for rule in rules:
        if rule.table == table and rule.action in ("JUMP", "GOTO"):
            jumps.setdefault(rule.chain, set()).add(rule.target)
    seen, todo = {start}, [start]
    while todo:
        for nxt in jumps.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _user_classes(rules: Iterable[FirewallRule], names: Mapping[str, int]) -> list[tuple[int, str, str]]:
    classes: dict[int, tuple[str, str]] = {0: ("0", "root")}
    for rule in rules:
        if rule.uid_owner is None:
            continue
        low = rule.uid_owner.partition("-")[0].strip()
        uid = int(low) if low.isdigit() and len(low) < 10 else names.get(low)
        if uid is not None and uid not in classes and uid != OTHER_USERS_UID:
            label = f"uid {uid}" + (f" ({low})" if not low.isdigit() else "")
            classes[uid] = (str(uid), label)
    classes[OTHER_USERS_UID] = ("other", "other users")
    return [(uid, key, label) for uid, (key, label) in classes.items()]


def analyze(rulesets: Iterable[Ruleset], packet: Packet, *, uid_names: Mapping[str, int] | None = None) -> FirewallAnalysis:
    """What the rules do to ``packet``, per user class. Pure: the caller supplies the rules
    and, optionally, resolved user names (``{"syslog": 104}``) for owner matches."""
    names = {"root": 0, **dict(uid_names or {})}
    sets = [rs for rs in rulesets if rs.kind == "rules"]
    rules = [r for rs in sets for r in rs.rules]
    chains = [c for rs in sets for c in rs.chains]
    by_chain: dict[tuple[str, str], list[FirewallRule]] = {}
    for rule in rules:
        by_chain.setdefault((rule.table, rule.chain), []).append(rule)

    output_chains = [c for c in chains if c.hook == "output" and c.type != "nat"]
    verdicts: list[UserVerdict] = []
    conditional: list[str] = []
    for uid, key, label in _user_classes(rules, names):
        walk = _Walk(by_chain, packet, uid, names)
        verdict, decided_by = "accept", "no rule"
        for chain in output_chains:
            result, rule = walk.chain(chain.table, chain.name)
            if result is None and chain.policy.upper() == "DROP":
                result, decided = "drop", f"policy DROP ({chain.table}/{chain.name})"
            else:
                decided = rule.text if rule is not None else "no rule"
            if result in ("drop", "reject", "other"):
                verdict, decided_by = result, decided
                break
            if result == "accept" and decided_by == "no rule":
                decided_by = decided
        verdicts.append(UserVerdict(key, label, verdict, decided_by))
        conditional.extend(walk.conditional)

    reply_blocks, reply_conditional = _reply_blocks(rules, chains, packet)
    if reply_blocks:
        # Replies from the address are dropped on the way in: nobody gets an answer.
        verdicts = [UserVerdict(v.uid, v.label, "drop", f"{reply_blocks[0]} (drops the replies)")
                    if v.verdict == "accept" else v for v in verdicts]
    conditional.extend(reply_conditional)
    conditional.extend(_unreached_blocks(rules, chains, packet, names))
    redirects = _redirects(rules, chains, packet, names)
    mentions = tuple(dict.fromkeys(r.text for r in rules if r.mentions(packet.address)))
    cond = tuple(dict.fromkeys(conditional))
    blocked = [v for v in verdicts if v.verdict != "accept"]
    if blocked and len(blocked) == len(verdicts):
        kind = "blocked"
    elif blocked:
        kind = "owner_restricted"
    elif redirects:
        kind = "redirected"
    elif cond:
        kind = "conditional"
    else:
        kind = "clear"
    return FirewallAnalysis(kind=kind, verdicts=tuple(verdicts), redirects=redirects, conditional=cond,
                            mentions=mentions, rule_count=len(rules))


def _hook_chains(rules: list[FirewallRule], chains: list[Chain], hooks: tuple[str, ...]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for chain in chains:
        if chain.hook in hooks:
            found.update((chain.table, name) for name in _reachable(rules, chain.table, chain.name))
    return found


def _reply_blocks(rules: list[FirewallRule], chains: list[Chain], packet: Packet) -> tuple[list[str], list[str]]:
    """INPUT rules that drop packets *from* the address (the SYN-ACK). Replies belong to an
    established connection, so rules limited to NEW/INVALID do not touch them."""
    input_chains = _hook_chains(rules, chains, ("input",))
    definite, maybe = [], []
    for rule in rules:
        if rule.action not in BLOCKING or (rule.table, rule.chain) not in input_chains or rule.source_negated:
            continue
        if not any(_covers(s, packet.address) is True for s in rule.sources):
            continue
        states = {s.lower() for s in rule.ctstates}
        if states and (("established" in states) == rule.ctstate_negated):
            continue
        if rule.conditions or rule.dports or rule.dports_unknown or rule.destinations or rule.protocol_negated:
            maybe.append(rule.text)    # ports/addresses of the reply side: not evaluated here
        elif rule.protocol in (None, "tcp", "6", "all", "0"):
            definite.append(rule.text)
    return definite, maybe


def _unreached_blocks(rules: list[FirewallRule], chains: list[Chain], packet: Packet,
                      names: Mapping[str, int]) -> list[str]:
    """DROP/REJECT rules for the address in chains no hook reaches in the rules read - the
    caller is probably missing from a pasted fragment, so they may well apply."""
    reached = _hook_chains(rules, chains, ("output", "input", "prerouting", "forward", "postrouting"))
    found = []
    for rule in rules:
        if rule.action not in BLOCKING or (rule.table, rule.chain) in reached:
            continue
        if rule.mentions(packet.address) and any(rule_matches(rule, packet, uid, names) is not False
                                                 for uid in (0, OTHER_USERS_UID)):
            found.append(f"{rule.text} (in chain {rule.chain}, not reached from OUTPUT in the rules read)")
    return found


def _redirects(rules: list[FirewallRule], chains: list[Chain], packet: Packet,
               names: Mapping[str, int]) -> tuple[Redirect, ...]:
    hooks: dict[tuple[str, str], str] = {}
    for hook in ("output", "prerouting"):
        for key in _hook_chains(rules, chains, (hook,)):
            hooks.setdefault(key, hook)
    found = []
    for rule in rules:
        if rule.action not in REDIRECTING:
            continue
        # A DNAT rule counts when it may apply to the IMDS connection of some user.
        if not any(rule_matches(rule, packet, uid, names) is not False for uid in (0, OTHER_USERS_UID)):
            continue
        hook = hooks.get((rule.table, rule.chain)) or _hook_from_name(rule.chain)
        applies = {"output": "this host's processes", "prerouting": "containers and pods (PREROUTING)"}.get(
            hook, "whatever jumps to this chain (its caller is not in the rules read)")
        found.append(Redirect(rule.text, rule.chain, rule.to_destination or "", applies))
    return tuple(found)


def _hook_from_name(chain: str) -> str:
    lowered = chain.lower()
    for hook in ("prerouting", "output"):
        if lowered.endswith(hook):
            return hook
    return ""
