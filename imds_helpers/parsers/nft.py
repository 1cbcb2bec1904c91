"""``nft list ruleset`` (also ``nft -a list table ...`` and pasted chain fragments).

On hosts where iptables is the nf_tables variant, the same rules appear here as well; nft
then warns ``table ip filter is managed by iptables-nft`` (pass stderr along), and those
tables are listed so the caller can avoid counting a rule twice.
"""

from __future__ import annotations

import re

from imds_helpers.parsers.firewall import Chain, FirewallRule, Ruleset

_TOKEN = re.compile(r'\{[^{}]*\}|"[^"]*"|\S+')
_MANAGED = re.compile(r"table (\w+ \S+) is managed by iptables-nft")
_SERVICES = {"http": 80, "https": 443, "www": 80, "domain": 53, "ssh": 22}
_VERDICTS = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT", "return": "RETURN", "jump": "JUMP",
             "goto": "GOTO", "dnat": "DNAT", "redirect": "REDIRECT", "queue": "OTHER", "continue": "CONTINUE",
             "masquerade": "CONTINUE", "snat": "CONTINUE"}
# Statements that do not decide anything about matching.
_STATEMENTS = {"counter", "log", "notrack", "nftrace", "comment"}
# Words after which a value follows that we skip (counter packets N bytes M, log prefix "x").
_SKIP_VALUE = {"packets", "bytes", "prefix", "level", "group", "comment", "handle", "flags"}


def _set_items(value: str) -> tuple[str, ...]:
    if value.startswith("{") and value.endswith("}"):
        return tuple(v.strip() for v in value[1:-1].split(",") if v.strip())
    return (value,)


def _ports(value: str) -> tuple[tuple[tuple[int, int], ...], bool]:
    ranges, unknown = [], False
    for item in _set_items(value):
        low, sep, high = item.partition("-")
        try:
            lo = _SERVICES.get(low) or int(low)
            hi = (_SERVICES.get(high) or int(high)) if sep else lo
        except ValueError:
            unknown = True
            continue
        ranges.append((lo, hi))
    return tuple(ranges), unknown


def parse_rule_line(line: str, *, table: str, chain: str) -> FirewallRule | None:
    """One nft rule (statements then a verdict); None for lines that are not rules."""
    body = re.sub(r"\s#.*$", "", line).strip()
    if not body or body in ("...", "}") or body.startswith(("type ", "policy ")):
        return None
    tokens = _TOKEN.findall(body)
    f: dict = {"conditions": []}
    action, target = "NONE", ""
    i = 0

    def take() -> tuple[str, bool]:
        nonlocal i
        negated = False
        if i + 1 < len(tokens) and tokens[i + 1] == "!=":
            negated = True
            i += 1
        i += 1
        return (tokens[i] if i < len(tokens) else ""), negated

    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in ("ip", "ip6") and nxt in ("daddr", "saddr"):
            i += 1
            val, neg = take()
            key = "destinations" if nxt == "daddr" else "sources"
            f[key], f[f"{key[:-1]}_negated" if key == "sources" else "destination_negated"] = _set_items(val), neg
            if tok == "ip6":
                f["ipv6_only"] = True
        elif tok in ("tcp", "udp", "th", "sctp") and nxt in ("dport", "sport"):
            if tok != "th":
                f["protocol"] = tok
            i += 1
            val, neg = take()
            if nxt == "dport":
                f["dports"], f["dports_unknown"] = _ports(val)
                f["dports_negated"] = neg
            else:
                f["conditions"].append(f"{tok} sport {val}")
        elif tok in ("ip", "meta") and nxt in ("protocol", "l4proto"):
            i += 1
            val, neg = take()
            f["protocol"], f["protocol_negated"] = val, neg
        elif tok == "meta" and nxt:
            i += 1
            continue   # "meta skuid 0" is printed as "skuid 0" too; handle the key next round
        elif tok == "skuid":
            val, neg = take()
            f["uid_owner"], f["uid_negated"] = val.strip('"'), neg
        elif tok == "oifname" or tok == "oif":
            val, neg = take()
            f["out_interface"], f["out_interface_negated"] = val.strip('"'), neg
        elif tok == "ct" and nxt == "state":
            i += 1
            val, neg = take()
            f["ctstates"], f["ctstate_negated"] = tuple(s for item in _set_items(val) for s in item.split(",")), neg
        elif tok in _VERDICTS:
            action = _VERDICTS[tok]
            if tok in ("jump", "goto"):
                target = nxt
                i += 1
            elif tok in ("dnat", "redirect", "snat"):
                words = tokens[i + 1:]
                if "to" in words:
                    f["to_destination"] = words[words.index("to") + 1] if words.index("to") + 1 < len(words) else ""
                break
            elif tok == "reject":
                if nxt == "with":
                    f["reject_with"] = " ".join(tokens[i + 2:i + 4])
                break
        elif tok in _STATEMENTS or tok in ("limit",):
            if tok == "limit":
                f["conditions"].append("limit")
            if tok == "comment":
                i += 1
        elif tok in _SKIP_VALUE:
            i += 1
        elif re.fullmatch(r"\d+", tok):
            pass
        else:
            f["conditions"].append(tok)
        i += 1
    if action == "NONE" and not any(k in f for k in ("destinations", "dports", "uid_owner")):
        # Neither a verdict nor a match we know: a line we do not understand.
        if f["conditions"] and not re.match(r"^[a-z]", body):
            return None
    conditions = tuple(dict.fromkeys(f.pop("conditions")))
    return FirewallRule(source="nft", table=table, chain=chain, text=body, action=action, target=target,
                        conditions=conditions, **f)


def parse_nft_ruleset(text: str) -> Ruleset:
    rules: list[FirewallRule] = []
    chains: dict[tuple[str, str], Chain] = {}
    stack: list[tuple[str, str]] = []        # ("table", "ip nat"), ("chain", "OUTPUT"), ("other", "")
    managed = tuple(dict.fromkeys(_MANAGED.findall(text or "")))
    skipped = 0
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        table = next((name for kind, name in reversed(stack) if kind == "table"), "")
        chain = next((name for kind, name in reversed(stack) if kind == "chain"), "")
        opens, closes = line.count("{"), line.count("}")
        if line.endswith("{") and opens - closes == 1:
            words = line[:-1].split()
            if words[:1] == ["table"] and len(words) >= 2:
                stack.append(("table", " ".join(words[1:3]) if len(words) >= 3 else words[1]))
            elif words[:1] == ["chain"] and len(words) >= 2:
                stack.append(("chain", words[1]))
                chains[(table, words[1])] = Chain(table=table, name=words[1], hook=_hook_from_name(words[1]))
            else:
                stack.append(("other", ""))
            continue
        if line == "}" or (closes > opens and not line.startswith(("ip", "tcp", "meta"))):
            for _ in range(closes - opens):
                if stack:
                    stack.pop()
            continue
        if opens > closes:   # a multi-line set or map body starts
            stack.extend([("other", "")] * (opens - closes))
            continue
        if any(kind == "other" for kind, _ in stack):
            continue          # inside a set/map/flowtable: elements, not rules
        if line.startswith("type ") and chain:
            hook = re.search(r"\bhook (\w+)", line)
            ctype = re.search(r"^type (\w+)", line)
            policy = re.search(r"\bpolicy (\w+)", line)
            chains[(table, chain)] = Chain(table=table, name=chain, hook=hook.group(1) if hook else "",
                                           type=ctype.group(1) if ctype else "",
                                           policy=policy.group(1).upper() if policy else "ACCEPT")
            continue
        if line.startswith("policy ") and chain:
            continue
        if not chain:
            skipped += 1
            continue
        rule = parse_rule_line(line, table=table, chain=chain)
        if rule is None:
            skipped += 1
        else:
            rules.append(rule)
    # Fragments without a "type ... hook" line: a DNAT says the chain is nat.
    fixed = []
    for key, c in chains.items():
        if not c.type and any(r.action in ("DNAT", "REDIRECT") for r in rules if (r.table, r.chain) == key):
            c = Chain(table=c.table, name=c.name, hook=c.hook, type="nat", policy=c.policy)
        fixed.append(c)
    kind = "rules" if rules or chains else ("unrecognised" if skipped else "empty")
    return Ruleset(kind=kind, source="nft", rules=tuple(rules), chains=tuple(fixed), skipped_lines=skipped,
                   iptables_nft_tables=managed)


def _hook_from_name(name: str) -> str:
    # Chains in fragments often carry the hook name (PREROUTING, output).
    lowered = name.lower()
    return lowered if lowered in ("prerouting", "input", "forward", "output", "postrouting") else ""
