"""BITS metrics in the Prometheus text format, for the textfile collector of
windows_exporter: a fleet's existing Prometheus scrapes them with no new server.

The format and the atomic write (a temporary file, then a rename) come from the
well-kept prometheus_client (the optional extra winbits[prometheus]).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ._types import JobState, Snapshot, visible

JOB = ["job_id", "job_name"]
FILE = [*JOB, "file"]


class _SnapshotCollector:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        jobs = self.snap.jobs
        state = GaugeMetricFamily(
            "bits_job_state", "1 for the job's current BITS state", labels=[*JOB, "state"]
        )
        size = GaugeMetricFamily(
            "bits_job_size_bytes", "Bytes to transfer (absent while unknown)", labels=JOB
        )
        done = GaugeMetricFamily("bits_job_transferred_bytes", "Bytes transferred", labels=JOB)
        files = GaugeMetricFamily("bits_job_files", "Files in the job", labels=JOB)
        files_done = GaugeMetricFamily(
            "bits_job_files_transferred", "Files transferred", labels=JOB
        )
        origin = GaugeMetricFamily(
            "bits_file_origin_bytes", "Bytes of the file from the origin server", labels=FILE
        )
        peers = GaugeMetricFamily(
            "bits_file_peer_bytes", "Bytes of the file from peers (BranchCache)", labels=FILE
        )
        counts = {s.name: 0 for s in JobState}
        origin_sum = peers_sum = 0
        reported = False
        for job in jobs:
            key = [str(job.id), visible(job.name)]  # no raw CR or U+2028 in a label
            name = getattr(job.state, "name", str(job.state))
            counts[name] = counts.get(name, 0) + 1
            state.add_metric([*key, name], 1)
            if job.progress.bytes_total is not None:
                size.add_metric(key, job.progress.bytes_total)
            done.add_metric(key, job.progress.bytes_transferred)
            files.add_metric(key, job.progress.files_total)
            files_done.add_metric(key, job.progress.files_transferred)
            for f in job.files:
                if f.peer_stats is None:
                    continue
                reported = True
                origin.add_metric([*key, visible(f.local_name)], f.peer_stats.from_origin)
                peers.add_metric([*key, visible(f.local_name)], f.peer_stats.from_peers)
                origin_sum += f.peer_stats.from_origin
                peers_sum += f.peer_stats.from_peers
        by_state = GaugeMetricFamily("bits_jobs", "Jobs in the queue by state", labels=["state"])
        for name, n in counts.items():
            by_state.add_metric([name], n)
        yield from (by_state, state, size, done, files, files_done, origin, peers)
        yield GaugeMetricFamily(
            "bits_peer_stats_reported",
            "1 if this BITS reports bytes from peers (IBackgroundCopyFile4)",
            value=1 if reported else 0,
        )
        yield GaugeMetricFamily(
            "bits_origin_bytes", "Bytes from origin servers, all files", value=origin_sum
        )
        yield GaugeMetricFamily("bits_peer_bytes", "Bytes from peers, all files", value=peers_sum)
        if origin_sum + peers_sum:
            yield GaugeMetricFamily(
                "bits_peer_share_ratio",
                "Share of downloaded bytes that came from peers (0 to 1)",
                value=peers_sum / (origin_sum + peers_sum),
            )


@dataclass(eq=False)  # registered in a registry, which hashes it by identity
class Health:
    """The exporter's own state: whether the last poll of BITS worked, when one last
    did (Unix time), and how many have failed since the exporter started."""

    up: bool = False
    last_success: float | None = None
    poll_errors: int = 0

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "bits_up", "1 if the last poll of BITS succeeded, 0 if it failed", value=int(self.up)
        )
        if self.last_success is not None:
            yield GaugeMetricFamily(
                "bits_exporter_last_success_timestamp_seconds",
                "When BITS was last read (Unix time)",
                value=self.last_success,
            )
        yield CounterMetricFamily(
            "bits_exporter_poll_errors",
            "Polls of BITS that failed since the exporter started",
            value=self.poll_errors,
        )


def registry_for(snap: Snapshot | None, health: Health | None = None) -> CollectorRegistry:
    """The metrics of a snapshot (none when the poll failed) and of the exporter."""
    registry = CollectorRegistry(auto_describe=False)
    if snap is not None:
        registry.register(_SnapshotCollector(snap))  # type: ignore[arg-type]
    if health is not None:
        registry.register(health)  # type: ignore[arg-type]
    return registry


def write_textfile(snap: Snapshot | None, path: str, health: Health | None = None) -> None:
    """Writes the metrics to path atomically (a temporary file beside it, then a
    rename), so the collector never reads half a file."""
    write_to_textfile(path, registry_for(snap, health))
