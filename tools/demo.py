"""Run by `tools/wine.py demo` inside Windows Python: download URL to DEST through BITS
with winbits, printing progress, then complete the job so the file lands."""

import sys
import time

import winbits


def main(url: str, dest: str) -> int:
    with winbits.connect() as bits:
        job = bits.create_job("winbits demo")
        try:
            job.add_file(url, dest)
            job.resume()
            deadline = time.monotonic() + 120
            while job.state not in (winbits.JobState.TRANSFERRED, winbits.JobState.ERROR):
                if time.monotonic() > deadline:
                    raise TimeoutError("the transfer did not finish in 120 s")
                p = job.progress
                print(f"  {job.state.name:<13} {p.bytes_transferred:>9} / {p.bytes_total} bytes")
                time.sleep(0.5)
            if job.state == winbits.JobState.ERROR:
                print(f"BITS error: {job.error}", file=sys.stderr)
                job.cancel()
                return 1
            for f in job.files():
                stats = f.peer_download_stats()
                print(f"  {f.local_name}: {f.progress.bytes_transferred} bytes; "
                      f"from origin/peers: {'not reported by this BITS' if stats is None else stats}")
            job.complete()
        except BaseException:
            job.cancel()  # nothing left behind in the queue
            raise
    print(f"downloaded {url} -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
