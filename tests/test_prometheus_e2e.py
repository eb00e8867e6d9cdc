"""The real chain on 127.0.0.1: winbits' exporter writes its file; Debian's
prometheus-node-exporter serves it with the textfile collector (the contract of
windows_exporter's); Debian's prometheus scrapes it every second and evaluates
contrib/prometheus/winbits.rules.yml; the test asks Prometheus' HTTP API for the rules'
results and gets the share it put in. Linux test bed only (the servers are Linux
programs); the bytes come from snapshots made here, as the double would give them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until

import winbits
from winbits import _counters
from winbits._types import FileProgress, FileRecord, JobProgress, JobRecord, PeerStats

RULES = Path(__file__).resolve().parent.parent / "contrib" / "prometheus" / "winbits.rules.yml"
SERVERS = ("prometheus", "prometheus-node-exporter")
pytestmark = pytest.mark.skipif(
    sys.platform == "win32"
    or (not all(shutil.which(s) for s in SERVERS) and not os.environ.get("CI")),
    reason="needs Debian's prometheus and prometheus-node-exporter (the Linux test bed)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return bytes(r.read())


def snapshot(origin: int, peers: int) -> winbits.Snapshot:
    f = FileRecord(
        "http://cache.example/pkg.cab",
        "C:\\pkg.cab",
        FileProgress(None, origin + peers, False),
        PeerStats(origin, peers),
    )
    job = JobRecord(
        uuid.UUID(int=5),
        "j",
        None,
        winbits.JobState.TRANSFERRING,
        JobProgress(None, origin + peers, 1, 0),
        None,
        (f,),
    )
    return winbits.Snapshot((job,), frozenset(), frozenset(), frozenset())


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(get(url))
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_the_export_and_the_rules_give_the_peer_share(tmp_path):
    pytest.importorskip("prometheus_client")
    from winbits._prometheus import Health, write_textfile

    textfiles = tmp_path / "textfile_inputs"
    textfiles.mkdir()
    prom = textfiles / "bits.prom"
    counters = _counters.Counters()

    def export(step: int) -> None:  # a quarter of the bytes from origin, three from peers
        snap = snapshot(origin=100 * step, peers=300 * step)
        counters.update(snap, now=time.time())
        write_textfile(snap, str(prom), Health(True, time.time(), 0), counters)

    export(0)
    node_port, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES))}]\n"
        "scrape_configs:\n"
        "  - job_name: windows\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{node_port}'], labels: {{instance: pc1}}}}]\n"
    )
    logs = (tmp_path / "node.log").open("wb"), (tmp_path / "prometheus.log").open("wb")
    servers = [
        subprocess.Popen(
            [
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{node_port}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={textfiles}",
            ],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=logs[1],
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_until(
            lambda: b"winbits_up 1" in get(f"http://127.0.0.1:{node_port}/metrics"),
            "node_exporter serving the file",
            retry_on=(OSError,),
        )
        wait_until(
            lambda: get(f"http://127.0.0.1:{prom_port}/-/ready"),
            "prometheus ready",
            retry_on=(OSError,),
        )
        step = 0

        def share() -> list[dict[str, Any]]:
            nonlocal step
            step += 1
            export(step)  # the exporter goes on writing while Prometheus scrapes
            return query(prom_port, "instance:winbits_peer_share:ratio_rate1h")

        result = wait_until(share, "the recording rule's result", retry_on=(OSError,))
        assert [(r["metric"], round(float(r["value"][1]), 9)) for r in result] == [
            ({"__name__": "instance:winbits_peer_share:ratio_rate1h", "instance": "pc1"}, 0.75)
        ]
        fleet = query(prom_port, "server:winbits_peer_share:ratio_rate1h")
        assert [(r["metric"]["server"], round(float(r["value"][1]), 9)) for r in fleet] == [
            ("cache.example", 0.75)
        ]
        up = query(prom_port, "winbits_up")
        assert [float(r["value"][1]) for r in up] == [1.0]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        for log in logs:
            log.close()
