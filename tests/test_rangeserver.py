"""The loopback server answers as real Windows BITS needs: HEAD with Content-Length,
GET with Range -> 206 and Content-Range."""

from __future__ import annotations

import http.client

import pytest


@pytest.fixture
def conn(server, serve):
    serve("r.bin", bytes(range(256)) * 40)  # 10240 bytes
    c = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    yield c
    c.close()


def fetch(conn, method, path, headers=None):
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def test_head_gives_length_without_body(conn):
    status, headers, body = fetch(conn, "HEAD", "/r.bin")
    assert (status, headers["Content-Length"], body) == (200, "10240", b"")


def test_range_gives_206_and_exact_bytes(conn):
    status, headers, body = fetch(conn, "GET", "/r.bin", {"Range": "bytes=100-355"})
    assert status == 206
    assert headers["Content-Range"] == "bytes 100-355/10240"
    assert body == (bytes(range(256)) * 40)[100:356]


def test_open_and_suffix_ranges(conn):
    assert (
        fetch(conn, "GET", "/r.bin", {"Range": "bytes=10200-"})[2]
        == (bytes(range(256)) * 40)[10200:]
    )
    status, headers, body = fetch(conn, "GET", "/r.bin", {"Range": "bytes=-5"})
    assert (status, headers["Content-Range"], body) == (
        206,
        "bytes 10235-10239/10240",
        (bytes(range(256)) * 40)[-5:],
    )


def test_bad_range_is_416_and_unknown_path_404(conn):
    assert fetch(conn, "GET", "/r.bin", {"Range": "bytes=20000-"})[0] == 416
    assert fetch(conn, "GET", "/nope")[0] == 404
