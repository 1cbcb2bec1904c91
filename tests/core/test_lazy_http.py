"""The HTTP stack (requests, urllib3) loads on first use, or in the background for a runbook."""

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
        import imds_helpers.api, imds_helpers.runbook, imds_helpers.proxy, imds_helpers.http
        print(sorted(m for m in ("requests", "urllib3") if m in sys.modules))
    """)
    assert out == "[]"


def test_proxy_step_without_proxy_variables_needs_no_requests():
    out = _run("""
        import sys
        from imds_helpers.proxy import analyze_proxy
        result = analyze_proxy("http://169.254.169.254", env={})
        print("requests" in sys.modules, result.requests.proxy)
    """)
    assert out == "False None"


def test_proxy_step_with_a_proxy_uses_requests_rules():
    out = _run("""
        import sys
        from imds_helpers.proxy import analyze_proxy
        result = analyze_proxy("http://169.254.169.254", env={"HTTP_PROXY": "http://10.0.0.1:3128",
                                                              "NO_PROXY": "169.254.0.0/16"})
        print("requests" in sys.modules, result.requests.proxy, result.requests.bypassed_by)
    """)
    assert out == "True None 169.254.0.0/16"


def test_import_in_background_loads_requests_and_urllib3():
    out = _run("""
        import sys
        from imds_helpers.http import import_in_background
        thread = import_in_background()
        assert thread.daemon
        thread.join(30)
        print(sorted(m for m in ("requests", "urllib3", "urllib3.util.retry") if m in sys.modules))
    """)
    assert out == "['requests', 'urllib3', 'urllib3.util.retry']"


def test_a_runbook_starts_the_background_import():
    out = _run("""
        import sys, threading
        from imds_helpers import runbook
        rb = runbook.start("vm", {"endpoint": "http://127.0.0.1:9"})
        names = [t.name for t in threading.enumerate()]
        for t in threading.enumerate():
            if t.name == "imds-import-http":
                t.join(30)
        print("imds-import-http" in names or "requests" in sys.modules, "requests" in sys.modules)
    """)
    assert out == "True True"
