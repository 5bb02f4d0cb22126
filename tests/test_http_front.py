"""The HTTP front end as ``mr-engine serve`` runs it: listening, off when empty, plain errors."""

from __future__ import annotations

import datetime as dt
import http.client
import re

from mr_engine.config import load_settings
from mr_engine.testing.processes import free_port
from mr_engine.testing.servers import ServeProcess, serve_env, server_at

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


def get(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, response.getheader("Content-Type", ""), body


def test_unknown_path_is_a_plain_404(db_url):
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        status, kind, body = get(server.http_port, "/no/such/page")
    assert status == 404
    assert kind.startswith("text/plain")
    assert body.count("\n") == 1 and "<" not in body


def test_http_is_off_when_http_listen_is_empty(db_url):
    with server_at(db_url, NOW) as server:
        assert "http" not in server.server.listening
        assert server.server.listening["lmtp"]


def test_defaults_and_public_url():
    settings = load_settings(environ={})
    assert settings.http_listen == ("127.0.0.1:8080",)
    assert settings.public_base == "http://127.0.0.1:8080"
    off = load_settings(environ={"MR_ENGINE_HTTP_LISTEN": ""})
    assert off.http_listen == ()
    given = load_settings(environ={"MR_ENGINE_PUBLIC_URL": "https://rooms.example.org/"})
    assert given.public_base == "https://rooms.example.org"


def test_serve_with_workers_answers_http_on_the_flag_address(db_url):
    port = free_port()
    env = serve_env(db_url, workers="2")
    with ServeProcess(env, "--http-listen", f"127.0.0.1:{port}") as proc:
        ready = proc.wait_for("ready")
        assert re.search(rf"HTTP on 127\.0\.0\.1:{port}", ready)
        statuses = {get(port, "/missing")[0] for _ in range(6)}
    assert statuses == {404}


def test_an_unescaped_plus_in_an_offset_is_read_as_plus():
    from mr_engine.web.params import instant
    from mr_engine.web.errors import BadRequest
    import pytest

    assert instant("at", "2026-03-02T09:00:00 01:00") == instant("at", "2026-03-02T08:00Z")
    with pytest.raises(BadRequest):
        instant("at", "2026-03-02 09:00 01:00 x")
