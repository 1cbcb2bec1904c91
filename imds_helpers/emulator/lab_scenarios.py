"""THE table of the blind fault lab: one row per lab case, next to the emulator scenario it uses.

A row says how the fault looks to the person who reports it (``story``: what an AMA user would
write in a ticket, never the scenario's name), which finding code the runbook's own verdict names
for it (``cause``, tied to the fault matrix by tests/lab/test_lab_table.py), plausible wrong
answers (``distractors``: real catalog codes), the fix, three hints written for this fault
(1: where to look, 2: what to compare, 3: almost the answer), the evidence that proves the answer
(``proof``, shown after grading), a difficulty 1..3 and ``kernel``: the real kernel fault the lab
uses instead of the emulator's simulation when it runs as root in a private network namespace
("" = always simulated by the emulator scenario). Adding a lab case is adding a row.

The engine is :mod:`imds_helpers.runbooks.fault_lab`; the track of a case is its scenario's mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from imds_helpers.emulator.scenarios import SCENARIOS
from imds_helpers.model.catalog import (ARC_AGENT_DISCONNECTED, ARC_AUTHORISED_REQUEST_REFUSED,
                                         ARC_CHALLENGE_MALFORMED, ARC_CHALLENGE_MISSING,
                                         ARC_ERROR_BEFORE_CHALLENGE, ARC_KEY_MISSING, ARC_KEY_NOT_REGULAR,
                                         ARC_KEY_NOT_SENDABLE, ARC_KEY_TOO_LARGE, ARC_KEY_TRAILING_NEWLINE,
                                         ARC_KEY_UNREADABLE, ARC_REALM_NOT_ABSOLUTE, ARC_REALM_NOT_KEY,
                                         ARC_REALM_OUTSIDE_DIR, ARC_SECRET_REJECTED, HTTP_FORWARDED,
                                         HTTP_NOT_FOUND, HTTP_NOT_IMDS, HTTP_NO_ANSWER,
                                         HTTP_NO_METADATA_HEADER, HTTP_RESET, HTTP_SERVER_ERROR,
                                         HTTP_THROTTLED, HTTP_TOO_LARGE, HTTP_TOO_SLOW, HTTP_UNREADABLE,
                                         HTTP_UPDATING, META_INCOMPLETE, META_VERSION_OLD,
                                         META_VERSION_REJECTED, NET_NETWORK_UNREACHABLE, NET_TCP_POLICY,
                                         NET_TCP_REFUSED, NET_TCP_TIMEOUT, PROXY_NOT_BYPASSED,
                                         TOKEN_AUDIENCE_UNKNOWN, TOKEN_NO_IDENTITY, TOKEN_REJECTED,
                                         TOKEN_SYSTEM_OFF, TOKEN_UAMI_AMBIGUOUS, TOKEN_UAMI_NOT_ATTACHED)


@dataclass(frozen=True)
class LabCase:
    key: str                        # stable internal id (instructor's answer key); never shown before grading
    scenario: str                   # the emulator scenario row (scenarios.SCENARIOS)
    story: str                      # the symptom as reported
    cause: str                      # the finding code the runbook's verdict names
    distractors: tuple[str, ...]    # >= 3 plausible catalog codes, never the cause
    fix: str                        # the fix, one or two sentences
    hints: tuple[str, str, str]     # where to look, what to compare, almost the answer
    proof: str                      # the evidence that proves the answer (after grading)
    difficulty: int                 # 1 easy .. 3 hard
    kernel: str = ""                # real kernel fault used when the lab may make it

    @property
    def track(self) -> str:
        return SCENARIOS[self.scenario].mode

    @property
    def codes(self) -> tuple[str, ...]:
        """The cause and the distractors (table order)."""
        return (self.cause, *self.distractors)


#: The real kernel faults the lab can make (``LabCase.kernel`` values).
IPTABLES_DROP = "iptables DROP"
KERNEL_FAULTS = (IPTABLES_DROP,)

_TOKEN = "/metadata/identity/oauth2/token"

LAB_CASES: tuple[LabCase, ...] = (
    # ----- VM (Azure IMDS) --------------------------------------------------------------------
    LabCase(
        "lab01", "vm-no-identity",
        "web-07 was rebuilt from the golden image on Monday. Since then Azure Monitor Agent on it has sent "
        "no heartbeat; its log repeats 'Failed to get MSI token from IMDS'. The VM answers SSH and pings, "
        "and the portal shows it running.",
        TOKEN_NO_IDENTITY, (TOKEN_UAMI_NOT_ATTACHED, TOKEN_UAMI_AMBIGUOUS, HTTP_NO_METADATA_HEADER, TOKEN_AUDIENCE_UNKNOWN),
        "Give the VM a managed identity: enable the system-assigned one (az vm identity assign -g RG -n VM) "
        "or assign the user-assigned identity AMA is configured with.",
        ("Instance metadata is the easy part; ask the token endpoint for a management.azure.com token as AMA does.",
         "Read the 400's error_description and compare it with what the same request would return if the VM had "
         "any identity. Does adding a client_id change anything?",
         "IMDS itself works; the token request says it cannot find an identity without any selector: the rebuilt "
         "VM has no managed identity at all."),
        f"GET {_TOKEN}?api-version=2018-02-01&resource=https://management.azure.com/ answers 400 invalid_request "
        "'Identity not found' while /metadata/instance answers 200: the service is healthy, the VM has no managed "
        "identity (the image rebuild dropped it).",
        1),
    LabCase(
        "lab02", "vm-multiple-user-assigned",
        "Since the Tuesday change window ('identity clean-up') AMA on app-vm-12 and a nightly job that uses "
        "DefaultAzureCredential both fail to get tokens. A colleague's script that passes its own client id still "
        "works on the same VM.",
        TOKEN_UAMI_AMBIGUOUS, (TOKEN_NO_IDENTITY, TOKEN_UAMI_NOT_ATTACHED, TOKEN_SYSTEM_OFF, TOKEN_REJECTED),
        "Tell every client which identity to use (AMA: the extension's authentication.managedIdentity setting; "
        "SDKs: client_id), or enable the system-assigned identity again.",
        ("Ask the token endpoint for a token the way AMA does: no client_id, no object_id.",
         "Compare that answer with the same request carrying a selector; what does the 400's description count?",
         "The VM has several user-assigned identities and no system-assigned one, so a request without a "
         "selector is ambiguous."),
        f"GET {_TOKEN} without a selector answers 400 'Multiple user assigned identities exist, please specify "
        "the clientId / resourceId of the identity in the token request'; the metadata answers 200. The clean-up "
        "removed the system-assigned identity and left three user-assigned ones.",
        2),
    LabCase(
        "lab03", "vm-unknown-resource",
        "ops-vm-03 was moved last week from a lab subscription into one of the production tenant's. Since then "
        "AMA logs 'failed to get token for https://monitor.azure.com/' and 'az login --identity' fails too. "
        "Instance metadata still reads fine.",
        TOKEN_AUDIENCE_UNKNOWN, (TOKEN_NO_IDENTITY, TOKEN_REJECTED, TOKEN_UAMI_NOT_ATTACHED, HTTP_SERVER_ERROR),
        "Request the audience that exists in the VM's cloud and tenant (e.g. the sovereign cloud's management and "
        "monitor endpoints), or register the application the resource names in the tenant.",
        ("The identity endpoint answers; read what it answers for the management and monitor audiences.",
         "Compare the error for https://management.azure.com/ with the one for https://monitor.azure.com/: is "
         "the identity the problem, or the audience?",
         "The answer is 400 invalid_resource with an AADSTS code: Entra ID does not know the audience in this "
         "tenant."),
        f"GET {_TOKEN}?resource=https://management.azure.com/ (and monitor) answers 400 invalid_resource "
        "'AADSTS500011: The resource principal named ... was not found in the tenant': an identity exists, Entra "
        "ID refuses the audience.",
        2),
    LabCase(
        "lab04", "vm-throttled",
        "batch-vm-21 runs a job that fans out 64 worker threads, each fetching a fresh token before every blob "
        "upload. Since about 02:00 uploads crawl, and AMA's heartbeats from the VM show gaps of several minutes.",
        HTTP_THROTTLED, (HTTP_SERVER_ERROR, HTTP_UPDATING, HTTP_NO_ANSWER, TOKEN_REJECTED),
        "Cache tokens until shortly before they expire and retry 429s after Retry-After with backoff; IMDS "
        "allows about 5 requests per second per VM (20 for tokens).",
        ("Send one plain request to /metadata/instance and look at the status line and every header.",
         "Compare the status with the documented IMDS limits, and note the header that tells a client when to "
         "come back.",
         "Every request answers 429 Too Many Requests with Retry-After: the VM is over IMDS's request rate."),
        "Every request, metadata and token alike, answers 429 Too Many Requests with a Retry-After header: the "
        "service is up and throttling this VM.",
        1),
    LabCase(
        "lab05", "vm-forwarded-rejected",
        "The network team rolled out 'transparent' egress inspection on the subnet's firewall appliance last "
        "night. This morning every request from db-vm-04 to 169.254.169.254 comes back 400 Bad Request, even a "
        "hand-typed curl with the Metadata header.",
        HTTP_FORWARDED, (HTTP_NO_METADATA_HEADER, META_VERSION_REJECTED, PROXY_NOT_BYPASSED, HTTP_NOT_IMDS),
        "Exempt 169.254.169.254 from the inspection/proxy (IMDS must be reached directly, no X-Forwarded-For "
        "header may be added on the way).",
        ("Look at the 400's body: IMDS says which part of the request it refuses.",
         "Compare what you sent (the request headers above the answer) with what the service says it received.",
         "IMDS refuses a header that you did not send: something on the way adds X-Forwarded-For."),
        "Every request answers 400 'Bad request. X-Forwarded-For header is not allowed' although the client "
        "never sent one: a proxy between the VM and IMDS adds it.",
        2),
    LabCase(
        "lab06", "vm-malformed-json",
        "An in-house agent on pay-vm-09 crashes at start with a parse error while reading its tags from the "
        "VM's metadata. Nothing was deployed on the VM; the same build runs fine on the VM next to it.",
        HTTP_UNREADABLE, (HTTP_TOO_LARGE, HTTP_NOT_IMDS, META_INCOMPLETE, META_VERSION_REJECTED),
        "Find what rewrites the answers between the VM and IMDS (a proxy or interceptor) and take it out of the "
        "path; IMDS itself always answers complete JSON.",
        ("Fetch /metadata/instance and read the raw body, not a parsed value.",
         "Compare the body with the JSON IMDS documents: are the separators where a parser expects them? Check "
         "the Server header too.",
         "The answer carries IMDS's headers but its body is not valid JSON (a key is followed by '=' instead of "
         "':')."),
        "/metadata/instance answers 200 with IMDS's headers, but the body does not parse as JSON (broken "
        "syntax at the right length); token answers are broken the same way.",
        2),
    LabCase(
        "lab07", "vm-truncated-body",
        "After a network driver update on edge-vm-02, AMA logs token failures a few times a minute and a curl "
        "of the metadata hangs a moment, then ends with an error about the transfer.",
        HTTP_UNREADABLE, (HTTP_RESET, HTTP_TOO_SLOW, HTTP_NO_ANSWER, HTTP_TOO_LARGE),
        "Find what cuts connections between the VM and IMDS (the new driver, a proxy, an inspection device) and "
        "fix or remove it.",
        ("Fetch /metadata/instance and look at how the answer ends, not only at its status.",
         "Compare the Content-Length the answer declares with the bytes that arrived.",
         "The answer starts normally, then the connection closes before the declared length: the body is cut "
         "short."),
        "Every answer declares a Content-Length larger than the bytes sent and the connection closes: the body "
        "is cut mid-JSON, so no client can read it.",
        3),
    LabCase(
        "lab08", "vm-oversized-body",
        "A sidecar on cache-vm-11 that polls the instance metadata once a minute was killed for running out of "
        "memory twice overnight; its last log line each time is 'reading metadata'.",
        HTTP_TOO_LARGE, (HTTP_TOO_SLOW, HTTP_UNREADABLE, HTTP_THROTTLED, META_INCOMPLETE),
        "Find what answers on 169.254.169.254 instead of IMDS (an interceptor or proxy) and take it out of the "
        "path; bound every read of the metadata.",
        ("Fetch /metadata/instance and note how much arrives.",
         "Compare the size of the answer with a normal instance document (a few kilobytes).",
         "The answer is valid JSON padded to megabytes: far larger than anything IMDS sends."),
        "/metadata/instance answers a JSON document of several megabytes (an IMDS document is a few "
        "kilobytes): the client's bound on the answer stops it.",
        2),
    LabCase(
        "lab09", "vm-not-imds-html",
        "dev-vm-31 was moved to a new VNet with a 'guest' egress policy. Since then the Azure SDK on it fails "
        "with 'Expecting value: line 1 column 1' when it asks for a token, although curl to the metadata "
        "address returns 200.",
        HTTP_NOT_IMDS, (HTTP_UNREADABLE, PROXY_NOT_BYPASSED, HTTP_FORWARDED, META_INCOMPLETE),
        "Make sure nothing intercepts 169.254.169.254 (the captive portal / guest proxy must exempt it) and run "
        "the client on the VM itself.",
        ("A 200 is not always a good answer: look at the answer's headers and the first lines of its body.",
         "Compare the Server and Content-Type headers with what IMDS sends (Server: IMDS/..., application/json).",
         "Something else answers: an HTML sign-in page served by a proxy, not the metadata service."),
        "Every request answers 200 with Content-Type text/html, Server squid/5.7 and a 'Network Login "
        "Required' page: a captive portal answers instead of IMDS.",
        1),
    LabCase(
        "lab10", "vm-connection-reset",
        "After a host intrusion-prevention agent was installed on fin-vm-05, every call to the metadata "
        "service fails at once; AMA logs socket errors and no heartbeat has arrived since.",
        HTTP_RESET, (NET_TCP_REFUSED, HTTP_NO_ANSWER, NET_TCP_POLICY, NET_TCP_TIMEOUT),
        "Exempt 169.254.169.254 from the new agent (or the rule that kills the connections) and retry.",
        ("Send one request and read exactly how it fails: at connect time or after the request went out?",
         "Compare a refused connection (nothing listens) with one that is accepted and then torn down.",
         "The TCP connection is accepted, the request is read, then the connection is reset (RST)."),
        "The TCP connect succeeds, then every request ends with 'connection reset' before any answer: "
        "something between the client and IMDS kills the connections.",
        2),
    LabCase(
        "lab11", "vm-firewalled",
        "A hardening script ran on web-07 at 09:10; Azure Monitor Agent stopped sending heartbeats at 09:12. "
        "SSH still works. The agent log shows long pauses, each ending in 'timed out'.",
        NET_TCP_TIMEOUT, (NET_TCP_REFUSED, HTTP_NO_ANSWER, NET_NETWORK_UNREACHABLE, HTTP_TOO_SLOW),
        "Remove the rule that drops traffic to the metadata endpoint (iptables-save | grep the address / port; "
        "Get-NetFirewallRule -Action Block) and make the hardening baseline exempt it.",
        ("Send one request and note how long it takes to fail, and at which stage.",
         "Compare a connection that is refused at once with one that never gets an answer to its SYN; check "
         "what the local firewall rules say about the port.",
         "The TCP handshake never completes: the connection attempts are silently dropped, as by a firewall DROP "
         "rule."),
        "The TCP connect to the endpoint times out (no SYN-ACK, no refusal): packets are silently dropped. The "
        "firewall rules of the machine show the DROP rule when the lab made a real one.",
        3, kernel=IPTABLES_DROP),
    LabCase(
        "lab12", "vm-accept-then-hang",
        "On gw-vm-08 every call to the metadata service waits until the client gives up. The network team says "
        "the port is open: 'telnet 169.254.169.254 80' connects at once.",
        HTTP_NO_ANSWER, (NET_TCP_TIMEOUT, HTTP_TOO_SLOW, HTTP_RESET, HTTP_SERVER_ERROR),
        "Find what holds the connections (ss -tnp, iptables DNAT rules, a local proxy) and remove it; if it is "
        "the service, open a support case with the evidence.",
        ("Send one request and note where it stops: connect, headers, or body?",
         "Compare the connect time with the time to the first byte of the answer.",
         "The connection is accepted at once and then nothing ever comes back: not even a status line."),
        "The TCP connect succeeds immediately, then no byte of an answer arrives before the deadline: "
        "something accepts the connections and never answers.",
        3),
    LabCase(
        "lab13", "vm-slow-drip",
        "On rpt-vm-14 AMA's token requests take minutes and then time out. With curl -v the engineer sees "
        "'HTTP/1.1 200 OK' and the headers at once, then the output stalls.",
        HTTP_TOO_SLOW, (HTTP_NO_ANSWER, HTTP_UNREADABLE, HTTP_THROTTLED, HTTP_RESET),
        "Find the proxy or traffic shaper between the VM and IMDS and take the metadata address out of it.",
        ("Send one request and note what arrives before the deadline: the status line, the headers, the body?",
         "Compare the Content-Length with how much of the body arrived and how fast.",
         "The headers come at once, then the body trickles in about a byte a second: the answer is far too slow."),
        "The status line and headers arrive at once, then the body trickles at about one byte per second, so "
        "the deadline passes long before the answer is complete.",
        3),
    LabCase(
        "lab14", "vm-old-api-versions",
        "A new inventory script on legacy-vm-01 (an Azure Stack Hub VM) gets 400 Bad Request from "
        "/metadata/instance, while the team's three-year-old script on the same VM works.",
        META_VERSION_OLD, (META_VERSION_REJECTED, HTTP_NO_METADATA_HEADER, HTTP_FORWARDED, HTTP_NOT_FOUND),
        "Use an api-version the service lists (newest-versions in the 400 body, or /metadata/versions).",
        ("Read the 400's body for the metadata request; it names what it did not like.",
         "Compare the api-version you sent with the versions the error lists, and try one of those.",
         "This IMDS is older than the script's api-version; a version it lists works."),
        "/metadata/instance?api-version=2019-11-01 (and newer) answers 400 with newest-versions listing "
        "2019-06-04 and older; a request with a listed version answers 200.",
        2),
    LabCase(
        "lab15", "vm-persistent-5xx",
        "AMA on sql-vm-06 has failed to get tokens since 06:00 with 'Internal server error'. Reading the "
        "instance metadata works fine, and the VM's identity is shown in the portal.",
        HTTP_SERVER_ERROR, (TOKEN_NO_IDENTITY, HTTP_THROTTLED, TOKEN_REJECTED, HTTP_UPDATING),
        "Retry with backoff; if the token endpoint keeps failing, open a support case with the evidence "
        "(timestamps, request ids) - the fault is on the service side.",
        ("Ask for a token and read the status code and the error_description.",
         "Compare the token endpoint's answer with /metadata/instance's: does the same service fail everywhere?",
         "Only the token endpoint fails, every time, with a 5xx from the service: a server-side error, not the "
         "identity's configuration."),
        f"GET {_TOKEN} answers 500 'Failed to retrieve token from the Active directory' on every try while "
        "/metadata/instance answers 200: a persistent service error on the token path.",
        2),
    # ----- Arc (HIMDS) -----------------------------------------------------------------------
    LabCase(
        "lab16", "arc-no-challenge-header",
        "On the on-premises Arc-enabled file server fs-02, AMA cannot get a token since the agent was updated. "
        "Its log shows '401 Unauthorized' from localhost:40342 and then gives up without retrying.",
        ARC_CHALLENGE_MISSING, (ARC_CHALLENGE_MALFORMED, ARC_SECRET_REJECTED, ARC_AGENT_DISCONNECTED, ARC_ERROR_BEFORE_CHALLENGE),
        "Check that nothing between the client and HIMDS strips headers; restart himds (systemctl restart "
        "himdsd) and update the agent if it persists.",
        ("Walk the challenge: send the first token request and read every header of the 401.",
         "Compare the 401 with the one HIMDS documents: where should the key file's path come from?",
         "The 401 carries no WWW-Authenticate header, so no client can find the key file."),
        "The first token request answers 401 without a WWW-Authenticate header: there is no realm, so no "
        "client knows which key file to read.",
        2),
    LabCase(
        "lab17", "arc-realm-outside-tokens-dir",
        "After the storage team re-laid the disks of the Arc-enabled build server build-03, every SDK client "
        "on it refuses to authenticate with an error about an invalid key file path. azcmagent show says "
        "Connected.",
        ARC_REALM_OUTSIDE_DIR, (ARC_REALM_NOT_KEY, ARC_KEY_MISSING, ARC_KEY_UNREADABLE, ARC_REALM_NOT_ABSOLUTE),
        "Find what answers on port 40342 (ss -ltnp) and treat the endpoint as untrusted; if the tokens "
        "directory was moved or replaced by a symlink, restore it (azcmagent recreates it on restart).",
        ("Walk the challenge and read the realm the 401 names.",
         "Compare the realm's directory with the tokens directory a client trusts.",
         "The realm names a .key file that is not in the tokens directory: clients refuse to read it."),
        "The 401's realm names a .key file in another directory, not directly in the tokens directory: the SDKs "
        "refuse such a path on purpose and never send its contents.",
        2),
    LabCase(
        "lab18", "arc-realm-not-key",
        "On the Arc-enabled server print-srv-04 a script using ManagedIdentityCredential fails with 'invalid "
        "file extension' since the agent's last automatic update; the agent itself shows Connected.",
        ARC_REALM_NOT_KEY, (ARC_REALM_OUTSIDE_DIR, ARC_KEY_MISSING, ARC_KEY_NOT_REGULAR, ARC_CHALLENGE_MALFORMED),
        "Repair or update the agent so that HIMDS writes <guid>.key files; until then treat the endpoint as "
        "suspect.",
        ("Walk the challenge and read the realm's path closely.",
         "Compare the realm's file name with what clients accept in the tokens directory.",
         "The realm names a file in the tokens directory, but its name does not end in .key."),
        "The 401's realm names a file in the tokens directory without the .key extension; clients accept only "
        "<name>.key there and refuse it.",
        2),
    LabCase(
        "lab19", "arc-realm-traversal",
        "A security scanner flagged the Arc-enabled jump host jmp-01 after an unsigned 'agent helper' was "
        "installed. Since then every SDK client on it refuses to use managed identity; the agent log is quiet.",
        ARC_REALM_OUTSIDE_DIR, (ARC_REALM_NOT_ABSOLUTE, ARC_KEY_MISSING, ARC_CHALLENGE_MALFORMED, ARC_REALM_NOT_KEY),
        "Treat the endpoint as untrusted: find what answers on port 40342 (ss -ltnp), remove the helper and "
        "restart himds.",
        ("Walk the challenge and read the realm character by character.",
         "Resolve the realm's path ('..' included) and compare where it lands with the tokens directory.",
         "The realm starts in the tokens directory and climbs out of it with '..': a path outside it."),
        "The 401's realm starts with the tokens directory but climbs out with '../../etc/': resolved, it points "
        "outside the tokens directory, which clients refuse (CVE-2024-35255 class).",
        3),
    LabCase(
        "lab20", "arc-realm-fifo",
        "On the Arc-enabled server lab-srv-09 a script's token requests used to block until somebody added a "
        "timeout to it; now the SDK refuses to authenticate. azcmagent show says Connected.",
        ARC_KEY_NOT_REGULAR, (ARC_KEY_TOO_LARGE, ARC_KEY_UNREADABLE, ARC_KEY_MISSING, ARC_REALM_OUTSIDE_DIR),
        "Remove the odd entry from the tokens directory (ls -la /var/opt/azcmagent/tokens) and restart himds; "
        "if the challenge keeps naming such a path, treat the endpoint as untrusted.",
        ("Walk the challenge, then look at the file the realm names (ls -l, stat).",
         "Compare the file's type with what HIMDS writes (a small regular file).",
         "The realm is in the tokens directory and ends in .key, but it is not a regular file (reading it "
         "would block)."),
        "The realm names <guid>.key in the tokens directory, and that entry is a FIFO: clients refuse anything "
        "but a regular file (reading a FIFO blocks).",
        3),
    LabCase(
        "lab21", "arc-key-too-large",
        "On the Arc-enabled server erp-srv-02 the Python SDK refuses the local key file since a disk-encryption "
        "agent was installed; PowerShell scripts that use managed identity fail too.",
        ARC_KEY_TOO_LARGE, (ARC_KEY_NOT_SENDABLE, ARC_KEY_TRAILING_NEWLINE, ARC_SECRET_REJECTED, ARC_KEY_UNREADABLE),
        "Delete the key file and retry; if HIMDS keeps writing large files, repair or update the agent (or the "
        "agent that pads the files) and treat the endpoint as suspect.",
        ("Walk the challenge, then look at the key file's size.",
         "Compare its size with the limit clients enforce and with a genuine key (a few dozen bytes).",
         "The key file is larger than 4096 bytes: clients refuse to read it."),
        "The realm names a regular .key file in the tokens directory of 5000 bytes, above the 4096-byte limit "
        "MSAL and azure-identity enforce, so it is never sent.",
        2),
    LabCase(
        "lab22", "arc-wrong-secret",
        "On the Arc-enabled server crm-srv-07 token requests fail with 401 even when run with sudo. A second "
        "monitoring agent was installed yesterday that also asks HIMDS for tokens.",
        ARC_SECRET_REJECTED, (ARC_AGENT_DISCONNECTED, ARC_KEY_UNREADABLE, ARC_CHALLENGE_MISSING, ARC_AUTHORISED_REQUEST_REFUSED),
        "Retry once as root or a himds member; make sure no proxy touches localhost; if it keeps failing "
        "restart himds and check the agent (azcmagent show, journalctl -u himdsd).",
        ("Walk the whole challenge: the first 401, the key file, and the request with the secret.",
         "Compare the answer to the request with the secret with the first one.",
         "The request carrying the key file's secret gets a fresh 401 challenge: the secret is rejected."),
        "The challenge works (401 with a realm, a readable key file), but the request with the secret answers "
        "another 401 with a new challenge: HIMDS rejects the secret.",
        2),
    LabCase(
        "lab23", "arc-agent-disconnected",
        "The Arc-enabled point-of-sale server pos-17 spent three months in a store's storeroom. Since it came "
        "back online AMA cannot get a token; the challenge and the key file look normal.",
        ARC_AGENT_DISCONNECTED, (ARC_SECRET_REJECTED, TOKEN_NO_IDENTITY, ARC_AUTHORISED_REQUEST_REFUSED, ARC_ERROR_BEFORE_CHALLENGE),
        "Run azcmagent show and azcmagent check; fix outbound access; if the agent is Expired, disconnect and "
        "reconnect the machine (azcmagent disconnect, then azcmagent connect).",
        ("Walk the whole challenge and read the final answer's status and error_description.",
         "Compare where it fails: the challenge and the key file work; what does HIMDS say after the secret?",
         "The authorised request answers 403: the agent's certificate expired while the machine was offline."),
        "After a correct challenge the token request answers 403 'certificate has expired, reconnect the "
        "machine': the agent is disconnected/expired and cannot issue tokens.",
        1),
)

#: key -> LabCase, in table order.
LAB_BY_KEY: Mapping[str, LabCase] = MappingProxyType({case.key: case for case in LAB_CASES})
assert len(LAB_BY_KEY) == len(LAB_CASES), "duplicate lab key"
