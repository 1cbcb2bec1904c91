"""Source of the runbooks. Writes notebooks/*.ipynb from the cell lists below.

    python notebooks/build_notebooks.py            # write the notebooks (no outputs)
    tests/isolated.sh .venv/bin/python notebooks/build_notebooks.py --execute
                                                   # ...and store the outputs of a healthy
                                                   # emulator run at the real endpoints (nbval)

Why generate: the prose, commands and cells are reviewed here as plain text, and every
notebook gets the same kernel spec, tags and structure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

IMDS = "http://169.254.169.254"
SEED_INSTANCE = f"{IMDS}/metadata/instance?api-version=2019-11-01&format=json"
SEED_TOKEN = f"{IMDS}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"
HIMDS = "http://localhost:40342"


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, *tags: str):
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _literal(value) -> str:
    """A default as Python source: text and lists in JSON form ("" and [...]), numbers and bools."""
    import json

    return repr(value) if isinstance(value, (bool, int, float)) else json.dumps(value)


def parameter_lines(kind: str) -> list[tuple[str, str]]:
    """(assignment, help) per parameter of the ``kind`` runbook, from runbook.PARAMETERS."""
    from imds_helpers.runbooks.runbook import PARAMETERS

    return [(f"{p.name}: {p.annotation} = {_literal(p.default_for(kind))}", p.help_for(kind))
            for p in PARAMETERS if kind in p.runbooks]


def parameter_cell(kind: str):
    """The runbook's typed, commented parameters cell (papermill --help-notebook shows it)."""
    return code("\n".join(f"{line}  # {help}" for line, help in parameter_lines(kind)), "parameters")


DEFAULTS_YAML = {"vm": "parameters/vm-defaults.yaml", "arc": "parameters/arc-defaults.yaml"}
TITLES = {"vm": "Azure VM", "arc": "Arc"}


def defaults_yaml(kind: str) -> str:
    """parameters/<kind>-defaults.yaml: every parameter of the runbook, its help above it."""
    import json

    from imds_helpers.runbooks.runbook import NOTEBOOKS, PARAMETERS

    lines = [f"# Defaults of the {TITLES[kind]} runbook (notebooks/{NOTEBOOKS[kind]}.ipynb), spelled out.",
             "# Copy this file per host and change what differs; unknown keys are refused.",
             "# Generated from imds_helpers.runbooks.runbook.PARAMETERS by notebooks/build_notebooks.py: edit the table."]
    for p in PARAMETERS:
        if kind in p.runbooks:   # JSON values are YAML values
            lines += ["", f"# {p.help_for(kind)}", f"{p.name}: {json.dumps(p.default_for(kind))}"]
    return "\n".join(lines) + "\n"


FAILURES_TABLE_NOTE = (
    "Every finding has a stable code; the table at the end lists each one with its explanation and fix "
    "(`imds_helpers.model.catalog.CATALOG` holds all of them)."
)

# The parameters are checked before any request: a bad one stops the first cell, named.
RUNBOOK_START = '''
from imds_helpers.runbooks import runbook

rb = runbook.start("{kind}", globals())
rb.platform()
'''
RUNBOOK_END = '''
rb.save()  # the JSON result `imds-runbook report` reads; the table's caption says where
rb.verdict()
'''

# Both runbooks: another host's report comes from its evidence, never from this machine.
EVIDENCE_NOTE = (
    "`evidence_path` names a bundle written by `imds-runbook collect` on another host: every step then renders "
    "from it (same tables and verdict, no request from this machine) and the report carries that host's name "
    "and vmId. A live run keeps its own bundle next to the result (`<host>.evidence.json`)."
)

VM_CELLS = [
    md(f"""
# Azure VM: can this machine reach IMDS and get a managed-identity token?

Azure Monitor Agent (AMA) authenticates with the VM's managed identity, which it gets from the
Azure Instance Metadata Service (IMDS) at `{IMDS}`. This runbook follows Microsoft's manual test
step by step — platform, proxy, network path, instance metadata, tokens — and says, for each layer,
whether it works and what to fix when it does not.

* Run it in JupyterLab on the VM, or headless: `imds-runbook run parameters/hosts/<host>.yaml`
  (or plain `papermill notebooks/01_azure_vm_imds.ipynb out.ipynb -f parameters/<file>.yaml`).
* For another machine, collect there (`imds-runbook collect --out <host>.json`) and set
  `evidence_path`: the report is rendered from that bundle, anywhere, without a request.
* Every step also shows the **curl** and **PowerShell** commands that do the same by hand.
* Tokens are secrets: this runbook shows only their decoded claims, never the token.
"""),
    md(f"""
## Parameters

Defaults are the real endpoint and the audiences AMA needs. For training, set `emulator_scenario`
(see `imds-runbook emulator --list`) and the runbook checks an emulated IMDS instead; or point
`endpoint` (or the environment variable `IMDS_RUNBOOK_ENDPOINT`) at a running emulator.

{EVIDENCE_NOTE}
"""),
    parameter_cell("vm"),
    md("""
## Step 1 — Is this an Azure VM?

Evidence, not guesses: the Azure chassis asset tag in SMBIOS (`7783-7084-3265-9085-8269-3286-77`),
the Arc agent's himds binary on disk, `IDENTITY_ENDPOINT` / `IMDS_ENDPOINT`, container markers.
An explicit `endpoint` always wins; the table says which endpoint was chosen and why.

By hand: `cat /sys/class/dmi/id/chassis_asset_tag` ·
PowerShell: `(Get-CimInstance Win32_SystemEnclosure).SMBIOSAssetTag`

The cell first checks the parameters, before any request is sent: a bad value stops it with one
line naming the parameter.
"""),
    code(RUNBOOK_START.format(kind="vm")),
    md("""
**If it fails:** not an Azure VM (no asset tag) means IMDS cannot answer here — run the runbook on
the VM itself. An Arc agent on an Azure VM is unsupported: remove one of them. Inside a container,
IMDS is reachable only through the host's network.
"""),
    md("""
## Step 2 — Proxies must be bypassed

IMDS refuses proxied requests (it rejects any request carrying `X-Forwarded-For`), so every client
must go to `169.254.169.254` directly. Clients that honour `HTTP_PROXY` — azure-identity, curl for
lower-case `http_proxy`, many agents — need `169.254.169.254` in `NO_PROXY`.

By hand: `env | grep -i proxy` · PowerShell: `netsh winhttp show proxy`
"""),
    code("rb.proxy()"),
    md("""
**If it warns:** add the metadata address to the bypass list:
`NO_PROXY=169.254.169.254,localhost,127.0.0.1`; on Windows
`netsh winhttp set proxy <proxy> bypass-list="<local>;169.254.169.254"`.
"""),
    md(f"""
## Step 3 — Network path: route, TCP, firewall

The request must leave through the primary NIC with a route for `169.254.169.254/32`, and nothing
may drop it. A DROP rule makes curl hang for about two minutes; here it is a named verdict in
about two seconds.

By hand: `ip route get 169.254.169.254` and `curl --connect-timeout 2 -sS -o /dev/null {IMDS}` ·
PowerShell: `Test-NetConnection 169.254.169.254 -Port 80` and `Get-NetRoute -DestinationPrefix 169.254.169.254/32`
"""),
    code("rb.network()"),
    md("""
**If it fails:** *connect timeout* — a firewall DROP or a wrong route; *refused* — a REJECT rule;
*network unreachable* — no route (renew DHCP / repair the primary NIC). Firewall rules that mention
the address are listed in the evidence.
"""),
    md(f"""
## Step 4 — Instance metadata (the guide's request)

```bash
curl -s -H Metadata:true --noproxy "*" "{SEED_INSTANCE}"
```
```powershell
Invoke-RestMethod -Headers @{{"Metadata"="true"}} -Method GET -NoProxy -Uri "{SEED_INSTANCE}" | ConvertTo-Json -Depth 64
```

The runbook sends exactly that, then the newest version the service lists, validates the fields AMA
needs (vmId, name, location, resourceId, azEnvironment, osType, network) and checks that the answer
really comes from IMDS (`Server: IMDS/…`, the schema, vmId against this machine's SMBIOS UUID).
"""),
    code("rb.instance()"),
    md("""
**If it fails:** an HTML or non-IMDS answer means something intercepts the address (a proxy, Docker
Desktop); `400 … api-version` lists the versions the service accepts; 429 means something else on the
VM hammers IMDS; 410 means IMDS is updating (back within 70 s).
"""),
    md(f"""
## Step 5 — Managed-identity tokens

The guide's request, for the system-assigned identity:

```bash
curl -s -H Metadata:true --noproxy "*" "{SEED_TOKEN}"
```
```powershell
Invoke-RestMethod -Headers @{{"Metadata"="true"}} -Method GET -NoProxy -Uri "{SEED_TOKEN}"
```

For a user-assigned identity add `&client_id=<id>`, `&object_id=<id>` or `&msi_res_id=<resource id>`.
The runbook asks for the management audience (the guide's) and the one AMA uses
(`https://monitor.azure.com/`), for each identity given and for the identity AMA is configured with
(`MANAGED_IDENTITY` in `/etc/default/azuremonitoragent`). Only decoded claims are shown.
"""),
    code("rb.tokens()"),
    md("""
**If it fails:** *Identity not found* — enable the system-assigned identity or attach the user-assigned
one; *Multiple user assigned identities* — tell AMA which one to use; *AADSTS500011* — the audience is
wrong for this cloud.
"""),
    md(f"""
## Verdict

{FAILURES_TABLE_NOTE} The result is also saved as JSON next to the report;
`imds-runbook report DIR` tabulates many of them.
"""),
    code(RUNBOOK_END),
]

ARC_CELLS = [
    md(f"""
# Azure Arc: can this server reach HIMDS and get a managed-identity token?

On Arc-enabled servers Azure Monitor Agent gets its token from the Arc agent's local identity service
(HIMDS) at `{HIMDS}`. Unlike IMDS, HIMDS proves the caller is privileged with a **challenge**: the
first token request is answered `401` with `WWW-Authenticate: Basic realm=<path>.key`; the caller
reads that key file (root or the `himds` group on Linux; Administrators or "Hybrid agent extension
applications" on Windows) and repeats the request with `Authorization: Basic <file contents>`.

This runbook walks that challenge visibly, one row per step, and never shows the secret or the token.
"""),
    md(f"## Parameters\n\n{EVIDENCE_NOTE}"),
    parameter_cell("arc"),
    md("""
## Step 1 — Is this an Arc-enabled server?

Detected from the install footprint (the himds binary on disk), not only from the running service,
plus `IDENTITY_ENDPOINT` / `IMDS_ENDPOINT`.

By hand: `ls -l /opt/azcmagent/bin/himds; systemctl status himdsd` · PowerShell: `Get-Service himds`

The cell first checks the parameters, before any request is sent: a bad value stops it with one
line naming the parameter.
"""),
    code(RUNBOOK_START.format(kind="arc")),
    md("""
## Step 2 — Proxies must be bypassed

HIMDS listens on `localhost`; a proxy that is not bypassed for `localhost,127.0.0.1` breaks the
challenge. By hand: `env | grep -i proxy` · `netsh winhttp show proxy`
"""),
    code("rb.proxy()"),
    md(f"""
## Step 3 — Is HIMDS listening?

By hand: `curl --connect-timeout 2 -sS -o /dev/null {HIMDS}` · PowerShell: `Test-NetConnection localhost -Port 40342`
"""),
    code("rb.network()"),
    md("**If refused:** HIMDS is not running — `systemctl restart himdsd` / `Restart-Service himds`, then `azcmagent show`."),
    md("""
## Step 4 — The environment clients use to find HIMDS

`IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token` and
`IMDS_ENDPOINT=http://localhost:40342`. On Linux they come from a systemd drop-in and are often
missing in interactive shells, `sudo` and containers — then SDKs fall back to IMDS and time out.
"""),
    code("rb.arc_environment()"),
    md(f"""
## Step 5 — Instance metadata from HIMDS

```bash
curl -s -H Metadata:true --noproxy "*" "{HIMDS}/metadata/instance?api-version=2019-11-01&format=json"
```
HIMDS answers a smaller document than IMDS (`network: {{}}`, a `Microsoft.HybridCompute/machines` resource id).
"""),
    code("rb.instance()"),
    md(f"""
## Step 6 — The challenge, step by step

```bash
curl -s -D - -H Metadata:true --noproxy "*" "{HIMDS}/metadata/identity/oauth2/token?api-version=2020-06-01&resource=https://management.azure.com/"
# 401, WWW-Authenticate: Basic realm=/var/opt/azcmagent/tokens/<guid>.key
sudo curl -s -H Metadata:true --noproxy "*" -H "Authorization: Basic $(sudo cat /var/opt/azcmagent/tokens/<guid>.key)" "…same URL…"
```

Rows, in order: **challenge** (the 401 and its header) → **realm** (the path obeys the rules clients
enforce: inside the tokens directory, `.key`, a regular file of at most 4096 bytes, readable by this
user) → **key file** (read, bounded, never shown) → **token** (claims only). A realm that breaks a
rule is reported and the file is never opened.
"""),
    code("rb.arc_challenge()"),
    md("""
**If it fails:** *permission* — run as root or add the user to the `himds` group; *realm outside the
tokens directory / not .key / too large* — something other than HIMDS answered, or the agent is
broken: do not read that file; *secret rejected* — retry once, then check `azcmagent show`;
*agent disconnected or expired* — reconnect the machine (`azcmagent connect`).
"""),
    md(f"## Verdict\n\n{FAILURES_TABLE_NOTE}"),
    code(RUNBOOK_END),
]

PRIMER_CELLS = [
    md("""
# Primer: IMDS and HIMDS, live

A short course for engineers who troubleshoot Azure Monitor Agent. Everything below runs against
the project's emulator, so it works on a laptop — and every request is the one you would send on a
real VM. No real metadata service is contacted.
"""),
    code('''
scenario: str = "vm-healthy"  # emulator scenario for the VM part (imds-runbook emulator --list)
''', "parameters"),
    code('''
from imds_helpers.runbooks import primer
from imds_helpers.emulator import Emulator

vm = Emulator(mode="vm", scenario=scenario).__enter__()
"emulated IMDS is up" if vm.base_url else "no emulator"
'''),
    md("""
## 1. A link-local address that never leaves the host

`169.254.169.254` is in the IPv4 link-local range (`169.254.0.0/16`): routers never forward it. On
an Azure VM the hypervisor answers it, so it is reachable only from inside the VM, only over plain
HTTP, and only through the primary NIC (DHCP installs a `/32` route for it). That is why a missing
route or a firewall rule breaks it, and why nothing outside the VM can answer for it.
Arc-enabled servers have no hypervisor to ask: the Arc agent runs its own service, HIMDS, on
`localhost:40342`.
"""),
    md("""
## 2. Why the `Metadata: true` header

A web application tricked into fetching a URL for an attacker (server-side request forgery) cannot
add custom headers, so IMDS refuses any request without `Metadata: true`:
"""),
    code('primer.get(vm.base_url, "/metadata/instance", {"api-version": "2019-11-01"}, metadata=False)'),
    md("With the header, the instance document (all values are strings):"),
    code('primer.get(vm.base_url, "/metadata/instance/compute", {"api-version": "2019-11-01", "format": "json"})'),
    md("""
## 3. `api-version` is mandatory

Without it (or with one the service does not know) IMDS answers 400 and lists its newest versions —
the fix is in the answer:
"""),
    code('primer.get(vm.base_url, "/metadata/instance", {})'),
    md("A single value (a *leaf*) must be asked for as text:"),
    code('primer.get(vm.base_url, "/metadata/instance/compute/location", {"api-version": "2019-11-01", "format": "text"})'),
    md("""
## 4. Why no proxy

IMDS rejects any request that carries `X-Forwarded-For`, the header proxies add. A client that sends
IMDS traffic to a proxy therefore fails even when the proxy works — bypass it
(`NO_PROXY=169.254.169.254`, `curl --noproxy '*'`, `Invoke-RestMethod -NoProxy`):
"""),
    code('primer.get(vm.base_url, "/metadata/instance", {"api-version": "2019-11-01"}, headers={"X-Forwarded-For": "10.0.0.4"})'),
    md("""
## 5. A managed-identity token and what its claims mean

The token is a JWT: the header and claims are only base64, readable by anyone who has it — which is
why it is a secret. This primer shows the claims and never the token:
"""),
    code('primer.claims_table(primer.token_claims(vm.base_url, "https://monitor.azure.com/"))', "nbval-ignore-output"),
    md("""
## 6. The Arc challenge

HIMDS does not trust "any process on the machine". The first token request is answered 401 with a
path; only a privileged caller can read the file at that path, and its contents are the password for
the second request:
"""),
    code('''
arc = Emulator(mode="arc").__enter__()
primer.arc_challenge(arc.base_url, str(arc.key_dir))
''', "nbval-ignore-output"),
    md("The file was single-use: HIMDS deleted it after the successful request."),
    code('''
import os

os.listdir(arc.key_dir)
'''),
    code('''
vm.close()
arc.close()
'''),
]

FLEET_CELLS = [
    md("""
# Fleet report: many hosts at a glance

Reads a folder of per-host results (the sidecar JSON files the runbooks write, e.g. collected from many
machines or produced by `imds-runbook run`) into one table: status per host and check, the most
common findings with their fixes, latency per step, and a CSV export.
"""),
    code('''
results_dir: str = "sample-results"  # folder with sidecar JSON files (searched recursively)
csv_path: str = ""  # CSV export path for the host x check table; empty: no export
''', "parameters"),
    code('''
from imds_helpers.fleet import report

df = report.load_results(results_dir)
report.brief_summary(df)
'''),
    md("## Status matrix (host × check)"),
    code("report.status_matrix(df)"),
    md("## Most common findings, with the fix"),
    code("report.top_findings(df, n=10)"),
    md("## Latency per step (milliseconds)"),
    code('''
latency = report.latency_table(df)
latency
''', "nbval-ignore-output"),
    code('''
report.latency_chart(latency)
''', "nbval-ignore-output"),
    md("## Export"),
    code('''
report.write_text(csv_path, report.render_csv(df)) if csv_path else "no export (set csv_path)"
'''),
]


LAB_CELLS = [
    md("""
# Fault lab: a broken host, your diagnosis

Something is wrong with a machine's metadata service, and all you have is the ticket. Investigate it
with the probes the primer teaches (`00_imds_primer.ipynb`) — raw requests and answers, the curl and
PowerShell lines — then choose the cause from the list. The lab grades your answer, shows the evidence
that proves it and the runbook's full verdict. Hints help, and cost points.

The fault is hidden: nothing above the answer names it. An emulator plays the machine (no real
metadata service is contacted); `imds-runbook lab --blind` opens this notebook with a seed,
`imds-runbook lab --exam` runs several cases in a terminal.
"""),
    code("""
seed: int = 7  # which cases are drawn (an instructor reads them with imds-runbook lab --answer-key --seed N)
track: str = "all"  # vm (Azure VM IMDS), arc (Arc HIMDS) or all
difficulty: int = 0  # 1 easy .. 3 hard; 0 any
round: int = 0  # the seed's n-th case, from 0; the next case is round + 1
hints: int = 0  # hints to take, 0-3; each costs points
answer: str = ""  # your diagnosis: a cause's letter or code; empty until you answer
fix: str = ""  # optional: a fix's letter
""", "parameters"),
    md("## The case"),
    code("""
from imds_helpers.runbooks import fault_lab, lab_view

lab = fault_lab.Lab(seed, track, difficulty or None, round)
lab_view.case(lab)
"""),
    md("How this machine makes the faults (the same words for every case):"),
    code("lab.simulated", "nbval-ignore-output"),
    md("""
## Investigate

The instance request first: does the service answer, and is it the service? (`lab.probe` sends one
GET like `curl -i`, proxies bypassed, secrets redacted.)
"""),
    code("lab.probe(*lab_view.INSTANCE)"),
    md("""
Then the token AMA asks for. On an Arc server this is the challenge: the 401 names a key file, its
contents go back as `Authorization: Basic`.
"""),
    code('lab.challenge() if lab.target == "arc" else lab.probe(*lab.token_request())', "nbval-ignore-output"),
    md("""
The same requests by hand, from a terminal. Anything else the primer shows works here too:
`lab.probe(path, params, headers={...}, metadata=False)`, `lab.files()` (the Arc tokens directory),
`lab.stat(path)` (a file as `ls -ld` shows it).
"""),
    code("lab_view.by_hand(lab)"),
    md("## Your diagnosis: one cause, and the fix if you know it"),
    code("lab_view.choices(lab)"),
    md("## Hints"),
    code("lab_view.hints(lab, hints)"),
    md("## Answer"),
    code("lab_view.answer(lab, answer, fix)"),
    md("## After the answer: the runbook's full verdict"),
    code("lab_view.after(lab)"),
    md("""
Next: the same seed's next case is `round + 1` (`imds-runbook lab --blind --seed N --round R`), or
another seed. The lab's emulator stops here:
"""),
    code("lab.close()"),
]


def merge_markdown(cells):
    """Adjacent markdown cells become one (a step's "if it fails" joins the next heading).

    papermill rewrites the whole notebook at every cell's start and end, markdown cells
    included: fewer cells are fewer rewrites, and the text reads the same.
    """
    merged = []
    for cell in cells:
        if merged and cell.cell_type == merged[-1].cell_type == "markdown":
            merged[-1] = md(merged[-1].source + "\n\n" + cell.source)
        else:
            merged.append(cell)
    return merged


NOTEBOOKS = {
    "00_imds_primer.ipynb": PRIMER_CELLS,
    "01_azure_vm_imds.ipynb": VM_CELLS,
    "02_arc_himds.ipynb": ARC_CELLS,
    "03_fleet_report.ipynb": FLEET_CELLS,
    "04_fault_lab.ipynb": LAB_CELLS,
}


def build(name: str, cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=merge_markdown(cells))
    stem = name.split("_", 1)[0]
    for index, cell in enumerate(nb.cells):     # stable ids: a rebuild changes only what changed
        cell.id = f"nb{stem}-{index:02d}"
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    return nb


SAMPLE_HOSTS = {  # host -> (runbook, emulator scenario, extra parameters)
    "web-01": ("vm", "vm-healthy", {}),
    "web-02": ("vm", "vm-healthy", {"client_ids": ["11111111-2222-3333-4444-555555555555"]}),
    "web-03": ("vm", "vm-no-identity", {}),
    "web-04": ("vm", "vm-multiple-user-assigned", {}),
    "web-05": ("vm", "vm-not-imds-html", {}),
    "db-01": ("vm", "vm-throttled", {"timeout_s": 2.0}),
    "arc-01": ("arc", "arc-healthy", {}),
    "arc-02": ("arc", "arc-realm-outside-tokens-dir", {}),
    "arc-03": ("arc", "arc-wrong-secret", {}),
}


def write_sample_results(folder: Path = HERE / "sample-results") -> None:
    """Sidecars of emulated hosts for the fleet notebook (committed, so its outputs are stable)."""
    from imds_helpers.runbooks.runbook import Runbook

    folder.mkdir(exist_ok=True)
    for host, (kind, scenario, extra) in SAMPLE_HOSTS.items():
        rb = Runbook(kind, {"host_name": host, "emulator_scenario": scenario,
                            "sidecar_path": str(folder / f"{host}.json"), **extra})
        for step in (("proxy", "network", "arc_environment", "instance", "arc_challenge") if kind == "arc"
                     else ("proxy", "network", "instance", "tokens")):
            getattr(rb.session, step)()
        rb.save()


def refresh_outputs(names: list[str]) -> None:
    """Execute the notebooks with emulators on the REAL addresses (needs the private namespace)."""
    import os

    from nbclient import NotebookClient

    from imds_helpers.emulator import Emulator

    if os.environ.get("IMDS_RUNBOOK_NETNS") != "1":
        raise SystemExit("run inside the private namespace: tests/isolated.sh .venv/bin/python "
                         "notebooks/build_notebooks.py --execute")
    with Emulator(mode="vm", host="169.254.169.254", port=80), \
            Emulator(mode="arc", host="127.0.0.1", port=40342, key_dir="/var/opt/azcmagent/tokens"):
        for name in names:
            nb = nbformat.read(HERE / name, as_version=4)
            NotebookClient(nb, kernel_name="python3", timeout=120,
                           resources={"metadata": {"path": str(HERE)}}).execute()
            for cell in nb.cells:   # run timestamps: churn in git, and bytes papermill rewrites per cell
                cell.metadata.pop("execution", None)
            nbformat.write(nb, HERE / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="store outputs of a healthy emulator run")
    parser.add_argument("--sample-results", action="store_true",
                        help="regenerate sample-results/ for 03 (implies --execute)")
    parser.add_argument("names", nargs="*", help="notebooks to build (default: all)")
    args = parser.parse_args(argv)
    names = args.names or list(NOTEBOOKS)
    if args.sample_results:
        write_sample_results()
        args.execute = True   # the fleet notebook's stored outputs show the samples: refresh them too
    for name in names:
        nbformat.write(build(name, NOTEBOOKS[name]), HERE / name)
    for kind, path in DEFAULTS_YAML.items():
        (HERE.parent / path).write_text(defaults_yaml(kind), encoding="utf-8")
    if args.execute:
        refresh_outputs(names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
