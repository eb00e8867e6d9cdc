"""BITS metrics in the Prometheus text format, for the textfile collector of
windows_exporter: a fleet's existing Prometheus scrapes them with no new server.

The format and the atomic write (a temporary file, then a rename) come from the
well-kept prometheus_client (the optional extra winbits[prometheus]).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ._counters import DIRECTIONS, KINDS, Counters
from ._types import JobState, Snapshot, visible

JOB = ["job_id", "job_name"]
FILE = [*JOB, "file"]


class _SnapshotCollector:
    """The queue now: jobs by state always; per-job and per-file series only when asked
    (they grow without bound across a fleet: for small queues and debugging)."""

    def __init__(self, snap: Snapshot, per_job: bool, peer_stats: bool | None) -> None:
        self.snap = snap
        self.per_job = per_job
        self.peer_stats = peer_stats  # what the counters last learnt, across empty queues

    def collect(self) -> Iterator[Metric]:
        counts = {s.name: 0 for s in JobState}
        for job in self.snap.jobs:
            name = str(job.state)
            counts[name] = counts.get(name, 0) + 1
        by_state = GaugeMetricFamily("winbits_jobs", "Jobs in the queue by state", labels=["state"])
        for name, n in counts.items():
            by_state.add_metric([name], n)
        yield by_state
        files = [f for j in self.snap.jobs for f in j.files]
        reported = any(f.peer_stats is not None for f in files) if files else self.peer_stats
        yield GaugeMetricFamily(
            "winbits_peer_stats_reported",
            "1 if this BITS reports bytes from peers (IBackgroundCopyFile4)",
            value=1 if reported else 0,
        )
        if self.per_job:
            yield from self._per_job()

    def _per_job(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "winbits_job_state", "1 for the job's current BITS state", labels=[*JOB, "state"]
        )
        size = GaugeMetricFamily(
            "winbits_job_size_bytes", "Bytes to transfer (absent while unknown)", labels=JOB
        )
        done = GaugeMetricFamily("winbits_job_transferred_bytes", "Bytes transferred", labels=JOB)
        files = GaugeMetricFamily("winbits_job_files", "Files in the job", labels=JOB)
        files_done = GaugeMetricFamily(
            "winbits_job_files_transferred", "Files transferred", labels=JOB
        )
        origin = GaugeMetricFamily(
            "winbits_file_origin_bytes", "Bytes of the file from the origin server", labels=FILE
        )
        peers = GaugeMetricFamily(
            "winbits_file_peer_bytes", "Bytes of the file from peers (BranchCache)", labels=FILE
        )
        for job in self.snap.jobs:
            key = [str(job.id), visible(job.name)]  # no raw CR or U+2028 in a label
            state.add_metric([*key, str(job.state)], 1)
            if job.progress.bytes_total is not None:
                size.add_metric(key, job.progress.bytes_total)
            done.add_metric(key, job.progress.bytes_transferred)
            files.add_metric(key, job.progress.files_total)
            files_done.add_metric(key, job.progress.files_transferred)
            for f in job.files:
                if f.peer_stats is not None:
                    origin.add_metric([*key, visible(f.local_name)], f.peer_stats.from_origin)
                    peers.add_metric([*key, visible(f.local_name)], f.peer_stats.from_peers)
        yield from (state, size, done, files, files_done, origin, peers)


class _CountersCollector:
    """The machine's counters per content server and direction (winbits._counters); the
    series in ``zero`` at 0, their first showing."""

    HELP: ClassVar[dict[str, str]] = {
        "transferred_bytes": "Bytes BITS transferred, by the host of the file's URL",
        "origin_bytes": "Bytes from the origin server (GetPeerDownloadStats)",
        "peer_bytes": "Bytes from peers through BranchCache (GetPeerDownloadStats)",
        "files_transferred": "Files BITS finished transferring",
    }

    def __init__(self, counters: Counters, zero: set[tuple[str, str, str]]) -> None:
        self.counters, self.zero = counters, zero

    def collect(self) -> Iterator[Metric]:
        for i, kind in enumerate(KINDS):
            family = CounterMetricFamily(
                f"winbits_{kind}", self.HELP[kind], labels=["server", "direction"]
            )
            for direction in DIRECTIONS:
                for server, values in sorted(self.counters.table(direction).items()):
                    if kind in ("origin_bytes", "peer_bytes") and not values[1] + values[2]:
                        continue  # no peer statistics from this BITS: absent, not a made-up 0
                    value = 0 if (direction, server, kind) in self.zero else values[i]
                    family.add_metric([visible(server), direction], value)
            yield family


@dataclass(eq=False)  # registered in a registry, which hashes it by identity
class Health:
    """The exporter's own state: whether the last poll of BITS worked, when one last
    did (Unix time), how many have failed since the exporter started, and whether the
    last round read the Bits-Client event log."""

    up: bool = False
    last_success: float | None = None
    poll_errors: int = 0
    event_log_up: bool = False

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "winbits_up", "1 if the last poll of BITS succeeded, 0 if it failed", value=int(self.up)
        )
        if self.last_success is not None:
            yield GaugeMetricFamily(
                "winbits_exporter_last_success_timestamp_seconds",
                "When BITS was last read (Unix time)",
                value=self.last_success,
            )
        yield CounterMetricFamily(
            "winbits_exporter_poll_errors",
            "Polls of BITS that failed since the exporter started",
            value=self.poll_errors,
        )
        yield GaugeMetricFamily(
            "winbits_event_log_up",
            "1 if the last round read the Bits-Client event log (the files of jobs no poll "
            "saw), 0 if it was not read (off, absent, not readable for this account)",
            value=int(self.event_log_up),
        )


def registry_for(
    snap: Snapshot | None,
    health: Health | None = None,
    counters: Counters | None = None,
    *,
    per_job: bool = False,
    zero: set[tuple[str, str, str]] | None = None,
) -> CollectorRegistry:
    """The metrics of a snapshot (none when the poll failed), of the counters (the
    series in ``zero`` at 0: Counters.take_fresh) and of the exporter."""
    registry = CollectorRegistry(auto_describe=False)
    if snap is not None:
        known = None if counters is None else counters.peer_stats
        registry.register(_SnapshotCollector(snap, per_job, known))  # type: ignore[arg-type]
    if counters is not None:
        registry.register(_CountersCollector(counters, zero or set()))  # type: ignore[arg-type]
    if health is not None:
        registry.register(health)  # type: ignore[arg-type]
    return registry


def write_textfile(
    snap: Snapshot | None,
    path: str,
    health: Health | None = None,
    counters: Counters | None = None,
    *,
    per_job: bool = False,
    zero: set[tuple[str, str, str]] | None = None,
) -> None:
    """Writes the metrics to path atomically (a temporary file beside it, then a
    rename), so the collector never reads half a file."""
    write_to_textfile(path, registry_for(snap, health, counters, per_job=per_job, zero=zero))
