"""Waiting for an exporter's ``/metrics`` page to show one sample, shared by the realizer and the deploy scenarios."""

from __future__ import annotations

import time

import requests


class SampleNeverSeen(AssertionError):
    """The page never had the sample within the wait; ``last`` is what it said the last time (for the caller's message)."""

    def __init__(self, sample: str, last: str) -> None:
        super().__init__(f"/metrics never had {sample!r} ({last})")
        self.last = last


def wait_for_sample(port: int, sample: str, *, timeout_s: float = 45, host: str = "127.0.0.1") -> str:
    """GET ``http://host:port/metrics`` until a line equals ``sample`` (``pg_up 1``); the page's text, else ``SampleNeverSeen``."""
    deadline = time.monotonic() + timeout_s
    name = sample.split()[0]
    last = "no answer"
    while True:
        try:
            response = requests.get(f"http://{host}:{port}/metrics", timeout=10)
            lines = response.text.splitlines()
            if response.status_code == 200 and sample in lines:
                return response.text
            last = f"HTTP {response.status_code}: {[line for line in lines if line.startswith(name + ' ')] or 'no ' + name}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            raise SampleNeverSeen(sample, last)
        time.sleep(1)
