"""The metadata client needs no third-party HTTP stack (http.client, loaded on first use),
and the proxy analysis applies requests' rules from its own standard-library code: requests
(about 80 ms in a fresh kernel, urllib3 included) never loads on the check path."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_pipeline_loads_no_http_stack():
    out = _run("""
        import sys
        import imds_helpers.api, imds_helpers.runbooks.runbook, imds_helpers.analyze.proxy, imds_helpers.collect.http
        print(sorted(m for m in ("requests", "urllib3") if m in sys.modules))
    """)
    assert out == "[]"


def test_proxy_step_without_proxy_variables_needs_no_requests():
    out = _run("""
        import sys
        from imds_helpers.analyze.proxy import analyze_proxy
        result = analyze_proxy("http://169.254.169.254", env={})
        print("requests" in sys.modules, result.requests.proxy)
    """)
    assert out == "False None"


def test_proxy_step_with_a_proxy_applies_requests_rules_without_requests():
    out = _run("""
        import sys
        from imds_helpers.analyze.proxy import analyze_proxy
        result = analyze_proxy("http://169.254.169.254", env={"HTTP_PROXY": "http://10.0.0.1:3128",
                                                              "NO_PROXY": "169.254.0.0/16"})
        print("requests" in sys.modules, result.requests.proxy, result.requests.bypassed_by)
    """)
    assert out == "False None 169.254.0.0/16"


def test_a_runbook_never_loads_urllib3_or_requests():
    # And nothing is imported in a background thread (the training emulator's threads aside):
    # a concurrent import of a package can see it half initialised.
    out = _run("""
        import sys, threading
        from imds_helpers.runbooks import runbook
        rb = runbook.start("vm", {"emulator_scenario": "vm-healthy", "timeout_s": 2})
        rb.platform(); rb.proxy(); rb.network()
        before = "imds_helpers.collect.transport" in sys.modules
        threads = sorted(t.name for t in threading.enumerate()            # the emulator's own aside
                         if not t.name.startswith("imds-emulator") and "process_request_thread" not in t.name)
        rb.instance(); rb.tokens()
        rb.close()
        print(rb.report().verdict.value, before, threads, "imds_helpers.collect.transport" in sys.modules,
              "urllib3" in sys.modules, "requests" in sys.modules)
    """)
    assert out.split(" ", 1)[1] == "False ['MainThread'] True False False"
    assert out.split()[0] == "ok", out   # the HTTP steps really ran
