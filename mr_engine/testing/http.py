"""HTTP requests to a running server's front end, as a test reads the answers."""

from __future__ import annotations

import http.client
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str


def get(port: int, path: str) -> Answer:
    """``GET path`` on loopback over a real socket."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return Answer(response.status, response.getheader("Content-Type", ""),
                      response.read().decode("utf-8"))
    finally:
        conn.close()
