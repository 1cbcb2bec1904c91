"""iptables rules as text: ``iptables-save``, ``iptables [-t T] -S [CHAIN]``, the commands
that create rules (``iptables -t nat -A OUTPUT ...``) and the ``iptables -L -n`` table.

A pasted prompt line such as ``root@node:/# iptables -t nat -S aad-metadata`` sets the table
for the lines that follow, as it does for the reader.
"""

from __future__ import annotations

import re
import shlex

from imds_helpers.parsers.firewall import Chain, FirewallRule, Ruleset

BUILTIN_HOOKS = {"PREROUTING": "prerouting", "INPUT": "input", "FORWARD": "forward",
                 "OUTPUT": "output", "POSTROUTING": "postrouting"}
_TERMINAL_TARGETS = {"ACCEPT", "DROP", "REJECT", "DNAT", "REDIRECT", "RETURN"}
# Targets that do something to the packet and let it continue (or only apply elsewhere).
_CONTINUE_TARGETS = {"LOG", "NFLOG", "ULOG", "MARK", "CONNMARK", "CT", "NOTRACK", "TRACE", "TCPMSS",
                     "CLASSIFY", "DSCP", "TOS", "AUDIT", "CHECKSUM", "SNAT", "MASQUERADE", "TEE",
                     "SECMARK", "CONNSECMARK", "TTL", "HL", "IDLETIMER", "LED", "SET"}
_HANDLED_MODULES = {"tcp", "udp", "multiport", "owner", "conntrack", "state", "comment"}
_FLAG_OPTIONS = {"--syn", "--log-uid", "--log-tcp-sequence", "--log-tcp-options", "--log-ip-options",
                 "--random", "--random-fully", "--persistent", "--suppl-groups", "--socket-exists"}
_PORTS = {"http": 80, "https": 443, "www": 80, "domain": 53, "ssh": 22}
_PROTOCOLS = {"all", "tcp", "udp", "icmp", "udplite", "sctp", "esp", "ah", "0", "6", "17", "1", "ipv6-icmp"}


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError:
        return line.split()


def _ports(value: str) -> tuple[tuple[tuple[int, int], ...], bool]:
    """"80", "80:90", "80,443", "http" -> ranges; the flag says a part was unreadable."""
    ranges = []
    unknown = False
    for part in value.split(","):
        low, sep, high = part.partition(":")
        try:
            lo = _PORTS.get(low) or int(low) if low else 0
            hi = (_PORTS.get(high) or int(high) if high else 65535) if sep else lo
        except ValueError:
            unknown = True
            continue
        ranges.append((lo, hi))
    return tuple(ranges), unknown


def _action(target: str) -> str:
    if target in _TERMINAL_TARGETS:
        return target
    if target in _CONTINUE_TARGETS or not target:
        return "CONTINUE" if target else "NONE"
    if target in ("QUEUE", "NFQUEUE"):
        return "OTHER"
    return "JUMP"


def parse_rule_spec(tokens: list[str], *, table: str, chain: str, text: str, source: str = "iptables") -> FirewallRule:
    """The options after ``-A CHAIN`` as a :class:`FirewallRule` (never raises)."""
    f: dict = {"destinations": (), "sources": (), "conditions": []}
    negate = False
    after_target = False
    goto = False
    target = ""
    i = 0

    def value() -> tuple[str, bool]:
        nonlocal i
        if i + 1 < len(tokens) and tokens[i + 1] == "!":   # old style: -d ! 1.2.3.4
            i += 2
            return (tokens[i] if i < len(tokens) else ""), True
        i += 1
        return (tokens[i] if i < len(tokens) else ""), False

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            negate = True
            i += 1
            continue
        if tok in ("-d", "--destination", "--dst"):
            val, neg = value()
            f["destinations"], f["destination_negated"] = tuple(v for v in val.split(",") if v), negate or neg
        elif tok in ("-s", "--source", "--src"):
            val, neg = value()
            f["sources"], f["source_negated"] = tuple(v for v in val.split(",") if v), negate or neg
        elif tok in ("-p", "--protocol"):
            val, neg = value()
            f["protocol"], f["protocol_negated"] = val.lower(), negate or neg
        elif tok in ("-o", "--out-interface"):
            val, neg = value()
            f["out_interface"], f["out_interface_negated"] = val, negate or neg
        elif tok in ("-m", "--match"):
            val, _ = value()
            if val not in _HANDLED_MODULES:
                f["conditions"].append(f"-m {val}")
        elif tok in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            val, neg = value()
            f["dports"], f["dports_unknown"] = _ports(val)
            f["dports_negated"] = negate or neg
        elif tok == "--uid-owner":
            val, neg = value()
            f["uid_owner"], f["uid_negated"] = val, negate or neg
        elif tok in ("--ctstate", "--state"):
            val, neg = value()
            f["ctstates"], f["ctstate_negated"] = tuple(val.split(",")), negate or neg
        elif tok == "--comment":
            value()
        elif tok in ("-j", "--jump", "-g", "--goto"):
            target, _ = value()
            goto = tok in ("-g", "--goto")
            after_target = True
        elif tok == "--to-destination":
            f["to_destination"], _ = value()
        elif tok == "--to-ports":
            val, _ = value()
            f["to_destination"] = f":{val}"
        elif tok == "--reject-with":
            f["reject_with"], _ = value()
        elif tok.startswith("-") and len(tok) > 1:
            if tok in _FLAG_OPTIONS:
                consumed = ""
            else:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                consumed = nxt if nxt and not nxt.startswith("-") and nxt != "!" else ""
                i += 1 if consumed else 0
            if not after_target and tok != "--syn":
                f["conditions"].append(("! " if negate else "") + f"{tok} {consumed}".strip())
        # A bare word outside an option (a rule number after -I CHAIN) is ignored.
        negate = False
        i += 1

    action = _action(target)
    if goto and action == "JUMP":
        action = "GOTO"
    conditions = tuple(dict.fromkeys(f.pop("conditions")))
    return FirewallRule(source=source, table=table, chain=chain, text=text.strip(), action=action,
                        target=target, conditions=conditions, **f)


def _builtin_chain(table: str, name: str, policy: str = "") -> Chain:
    return Chain(table=table, name=name, hook=BUILTIN_HOOKS.get(name, ""), type=table if name in BUILTIN_HOOKS else "",
                 policy=policy)


def parse_iptables(text: str) -> Ruleset:
    """``iptables-save`` / ``iptables -S`` / rule-creating commands / ``iptables -L``."""
    if re.search(r"^Chain \S+ \(", text or "", re.MULTILINE):
        return parse_iptables_list(text)
    rules: list[FirewallRule] = []
    chains: dict[tuple[str, str], Chain] = {}
    table = "filter"
    skipped = 0
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*") and len(line) > 1 and line[1:].isidentifier():
            table = line[1:]
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if parts:
                chain = parts[0]
                policy = parts[1] if len(parts) > 1 and parts[1] != "-" else ""
                chains[(table, chain)] = _builtin_chain(table, chain, policy)
            continue
        tokens = _tokens(line)
        # A command line (with prompt or sudo): take what follows the iptables word.
        cmd = next((k for k, t in enumerate(tokens) if re.fullmatch(r"(?:\S*/)?iptables(?:-nft|-legacy)?(?:-save)?", t)), None)
        line_table = table
        if cmd is not None:
            tokens = tokens[cmd + 1:]
            for k, t in enumerate(tokens[:-1]):
                if t in ("-t", "--table"):
                    line_table = tokens[k + 1]
            if not any(t in ("-A", "--append", "-I", "--insert", "-P", "--policy") for t in tokens):
                table = line_table   # "iptables -t nat -S ..." sets the table of what follows
                continue
            tokens = [t for k, t in enumerate(tokens) if t not in ("-t", "--table") and
                      (k == 0 or tokens[k - 1] not in ("-t", "--table"))]
        if not tokens:
            skipped += 1
            continue
        op = tokens[0]
        if op in ("-P", "--policy") and len(tokens) >= 3:
            chains[(line_table, tokens[1])] = _builtin_chain(line_table, tokens[1], tokens[2])
        elif op in ("-N", "--new-chain") and len(tokens) >= 2:
            chains.setdefault((line_table, tokens[1]), Chain(table=line_table, name=tokens[1]))
        elif op in ("-A", "--append", "-I", "--insert") and len(tokens) >= 2:
            chain = tokens[1]
            chains.setdefault((line_table, chain), _builtin_chain(line_table, chain))
            rules.append(parse_rule_spec(tokens[2:], table=line_table, chain=chain, text=line))
        else:
            skipped += 1
    kind = "rules" if rules or chains else ("unrecognised" if skipped else "empty")
    return Ruleset(kind=kind, source="iptables", rules=tuple(rules), chains=tuple(chains.values()),
                   skipped_lines=skipped)


_LIST_EXTRA = [
    (re.compile(r"\bdpts?:(\S+)"), "dport"),
    (re.compile(r"\bmultiport dports (\S+)"), "dport"),
    (re.compile(r"(!\s*)?owner UID match (!\s*)?(\S+)"), "uid"),
    (re.compile(r"\bto:(\S+)"), "to"),
    (re.compile(r"\bredir ports (\S+)"), "redir"),
    (re.compile(r"\breject-with (\S+)"), "reject"),
    (re.compile(r"\b(?:ct)?state (\S+)"), "state"),
    (re.compile(r"/\*.*?\*/"), "comment"),
]


def parse_iptables_list(text: str) -> Ruleset:
    """``iptables [-t T] -L [-n] [-v]``: one table of rows per chain."""
    rules: list[FirewallRule] = []
    chains: dict[str, Chain] = {}
    chain = ""
    table = ""
    columns: list[str] = []
    skipped = 0
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        head = re.match(r"^Chain (\S+) \((?:policy (\w+))?", line)
        if head:
            chain = head.group(1)
            chains[chain] = Chain(table=table, name=chain, hook=BUILTIN_HOOKS.get(chain, ""),
                                  policy=head.group(2) or "")
            continue
        tokens = line.split()
        if "target" in tokens and "destination" in tokens:
            columns = tokens
            continue
        cmd = re.search(r"iptables\S*\s.*?(?:-t|--table)\s+(\S+)", line)
        if cmd:
            table = cmd.group(1)
            continue
        row = _list_row(tokens, columns)
        if row is None or not chain:
            skipped += 1
            continue
        rules.append(_list_rule(row, chain, table, line))
    if not table:
        # The table is not in the output; DNAT/REDIRECT only exist in nat.
        table = "nat" if any(r.action in ("DNAT", "REDIRECT") for r in rules) else "filter"
        rules = [FirewallRule(**{**r.__dict__, "table": table}) for r in rules]
    fixed_chains = tuple(Chain(table=table, name=c.name, hook=c.hook, type=table if c.hook else "", policy=c.policy)
                         for c in chains.values())
    kind = "rules" if rules or chains else ("unrecognised" if skipped else "empty")
    return Ruleset(kind=kind, source="iptables-list", rules=tuple(rules), chains=fixed_chains, skipped_lines=skipped)


def _list_row(tokens: list[str], columns: list[str]) -> dict[str, str] | None:
    names = [c for c in (columns or ["target", "prot", "opt", "source", "destination"])]
    if "target" not in names:
        return None
    # Rows without a target start with the protocol: "all  --  0.0.0.0/0 ..."
    if tokens and len(tokens) > 1 and tokens[0].lower() in _PROTOCOLS and tokens[1] in ("--", "-f", "!f"):
        tokens = [""] + tokens
    fixed = len(names)
    if len(tokens) < fixed:
        return None
    row = dict(zip(names, tokens[:fixed]))
    if row.get("opt") not in ("--", "-f", "!f", None) or row.get("prot", "").lower() not in _PROTOCOLS:
        return None
    row["extra"] = " ".join(tokens[fixed:])
    return row


def _list_rule(row: dict[str, str], chain: str, table: str, line: str) -> FirewallRule:
    extra = row.get("extra", "")
    fields: dict = {}
    conditions = []
    rest = extra
    for pattern, name in _LIST_EXTRA:
        match = pattern.search(rest)
        if not match:
            continue
        rest = rest.replace(match.group(0), " ")
        if name == "dport":
            fields["dports"], fields["dports_unknown"] = _ports(match.group(1))
        elif name == "uid":
            fields["uid_owner"] = match.group(3)
            fields["uid_negated"] = bool(match.group(1) or match.group(2))
        elif name == "to":
            fields["to_destination"] = match.group(1)
        elif name == "redir":
            fields["to_destination"] = f":{match.group(1)}"
        elif name == "reject":
            fields["reject_with"] = match.group(1)
        elif name == "state":
            fields["ctstates"] = tuple(match.group(1).split(","))
    leftover = [w for w in rest.split() if w not in ("tcp", "udp", "multiport", "owner")]
    if leftover:
        conditions.append(" ".join(leftover))

    def addresses(value: str) -> tuple[tuple[str, ...], bool]:
        negated = value.startswith("!")
        value = value.lstrip("!")
        return (() if value in ("0.0.0.0/0", "anywhere", "::/0") else (value,)), negated

    dest, dest_neg = addresses(row.get("destination", ""))
    src, src_neg = addresses(row.get("source", ""))
    prot = row.get("prot", "all").lower()
    out = row.get("out")
    if out and out != "*":
        fields["out_interface"] = out.lstrip("!")
        fields["out_interface_negated"] = out.startswith("!")
    target = row.get("target", "")
    return FirewallRule(
        source="iptables-list", table=table, chain=chain, text=line, destinations=dest, destination_negated=dest_neg,
        sources=src, source_negated=src_neg, protocol=None if prot in ("all", "0") else prot,
        action=_action(target), target=target, conditions=tuple(conditions), **fields,
    )
