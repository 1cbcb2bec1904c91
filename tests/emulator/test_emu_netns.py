"""Inside tests/isolated.sh only: the emulator owns the real addresses (169.254.169.254:80,
localhost:40342, /var/opt/azcmagent/tokens) without --allow-remote, because lo is the only
interface there."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import pytest

from emu_client import IN_NETNS, Client

pytestmark = pytest.mark.skipif(
    not IN_NETNS, reason="needs the private loopback-only namespace: run via tests/isolated.sh (IMDS_RUNBOOK_NETNS=1)")

TOKENS_DIR = "/var/opt/azcmagent/tokens"


def test_namespace_has_only_lo():
    from imds_helpers.emulator.server import only_loopback_interface
    assert only_loopback_interface()


def test_vm_on_the_real_address(make_emulator):
    emu = make_emulator(host="169.254.169.254", port=80)       # no allow_remote needed here
    assert emu.base_url == "http://169.254.169.254:80"
    c = Client(emu.base_url)
    assert c.instance().status == 200 and c.token().status == 200


@pytest.mark.skipif(os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") != "1", reason="tokens dir not mounted")
def test_arc_on_the_real_port_and_tokens_dir(make_emulator):
    emu = make_emulator(mode="arc", host="127.0.0.1", port=40342, key_dir=TOKENS_DIR)
    r = Client("http://127.0.0.1:40342").token(api_version="2020-06-01")
    realm = r.headers["WWW-Authenticate"].split("=", 1)[1]
    assert r.status == 401 and os.path.dirname(realm) == TOKENS_DIR
    assert emu.canary in open(realm).read()
    emu.close()
    assert os.listdir(TOKENS_DIR) == []


def test_cli_on_the_real_address():
    proc = subprocess.Popen([sys.executable, "-m", "imds_helpers", "emulator", "--host", "169.254.169.254",
                             "--port", "80"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([proc.stdout], [], [], 15)[0]
        url = proc.stdout.readline().strip()
        assert url == "http://169.254.169.254:80"
        assert Client(url).get("/metadata/versions").status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
