"""Load and lifetime of the emulator on loopback (bounded: a fixed number of requests, each
with a timeout, from a fixed number of threads).

Thousands of requests from 32 threads, each with its own keep-alive session, mixing instance
metadata and token requests, with the real rate limits on: every request is answered (the
count of answers and the emulator's own request log equal the number sent: nothing lost),
only 200 and 429 come back (never a 5xx), the emulator's memory stays flat from one round to
the next, it answers correctly afterwards, and its threads are gone after ``close()``.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from imds_helpers.emulator import Emulator

THREADS = 32
ROUNDS = (600, 1500, 1500)           # warm-up, then two measured rounds: 3600 requests
TIMEOUT = (2.0, 10.0)
INSTANCE = ("/metadata/instance", {"api-version": "2021-02-01", "format": "json"})
TOKEN = ("/metadata/identity/oauth2/token", {"api-version": "2018-02-01", "resource": "https://management.azure.com/"})
RSS_GROWTH_LIMIT_KB = 12 * 1024


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _worker(base: str, count: int, offset: int) -> Counter:
    """``count`` requests on one keep-alive session: two instance requests for each token request."""
    seen: Counter = Counter()
    session = requests.Session()
    session.trust_env = False
    try:
        for i in range(count):
            path, params = TOKEN if (offset + i) % 3 == 2 else INSTANCE
            kind = "token" if path == TOKEN[0] else "instance"
            try:
                response = session.get(base + path, params=params, headers={"Metadata": "true"}, timeout=TIMEOUT)
                seen[(kind, response.status_code)] += 1
                response.close()
            except requests.RequestException as err:
                seen[(kind, f"error:{type(err).__name__}")] += 1
    finally:
        session.close()
    return seen


def _round(emu: Emulator, total: int) -> Counter:
    shares = [total // THREADS + (1 if i < total % THREADS else 0) for i in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        parts = list(pool.map(_worker, [emu.base_url] * THREADS, shares, range(THREADS)))
    counts: Counter = Counter()
    for part in parts:
        counts.update(part)
    return counts


def test_thousands_of_requests_nothing_lost_memory_flat_threads_released(reliability_counts):
    baseline_threads = threading.active_count()
    emu = Emulator(mode="vm", scenario="vm-healthy")          # real rate limits: 5/s, identity 20/s and 5 at once
    try:
        rss: list[int] = []
        totals: Counter = Counter()
        for total in ROUNDS:
            started = time.monotonic()
            counts = _round(emu, total)
            took = time.monotonic() - started
            answered = sum(counts.values())
            statuses = Counter(status for (_, status) in counts.elements())
            logged = len(emu.request_log)
            emu.request_log.clear()       # the log keeps every request by design; measure the server itself
            gc.collect()
            rss.append(_rss_kb())
            totals.update(counts)
            reliability_counts.add("load_requests", total)
            reliability_counts.add("lost", total - answered + sum(n for s, n in statuses.items() if isinstance(s, str)))
            assert answered == total and logged == total, (answered, logged, counts)
            assert set(statuses) <= {200, 429}, statuses               # no 5xx, no transport error
            assert took < 60, took
        by_status = Counter(status for (_, status) in totals.elements())
        assert by_status[200] > 0 and by_status[429] > 0, by_status
        assert totals[("token", 200)] > 0 and totals[("instance", 429)] > 0, totals
        # Flat: the second measured round costs no more memory than the first left behind.
        assert rss[2] - rss[1] < RSS_GROWTH_LIMIT_KB, rss

        # Still correct afterwards (once the 1-second rate window has passed).
        time.sleep(1.1)
        session = requests.Session()
        session.trust_env = False
        try:
            instance = session.get(emu.base_url + INSTANCE[0], params=INSTANCE[1], headers={"Metadata": "true"},
                                   timeout=TIMEOUT)
            token = session.get(emu.base_url + TOKEN[0], params=TOKEN[1], headers={"Metadata": "true"}, timeout=TIMEOUT)
        finally:
            session.close()
        assert instance.status_code == 200 and instance.json()["compute"]["vmId"]
        assert token.status_code == 200 and emu.canary in token.json()["access_token"]
    finally:
        emu.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline_threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline_threads, [t.name for t in threading.enumerate()]
    reliability_counts.scenario("load:vm-healthy-rate-limited")


def test_more_than_five_concurrent_identity_requests_get_429(reliability_counts):
    """IMDS serves at most 5 identity requests at once: the sixth and later wait for nobody."""
    with Emulator(mode="vm", scenario="vm-healthy", scenario_params={"token_delay": 0.6}) as emu:
        barrier = threading.Barrier(10)

        def one(_: int) -> tuple[int, dict]:
            session = requests.Session()
            session.trust_env = False
            try:
                barrier.wait(5)
                response = session.get(emu.base_url + TOKEN[0], params={**TOKEN[1], "bypass_cache": "true"},
                                       headers={"Metadata": "true"}, timeout=TIMEOUT)
                return response.status_code, response.json()
            finally:
                session.close()

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(one, range(10)))
    statuses = Counter(status for status, _ in answers)
    reliability_counts.add("load_requests", 10)
    assert set(statuses) <= {200, 429} and statuses[200] <= 5 and statuses[429] >= 5, statuses
    throttled = [body for status, body in answers if status == 429]
    assert all("error" in body for body in throttled), throttled
    reliability_counts.scenario("load:identity-concurrency")
