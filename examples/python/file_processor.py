"""Idempotent file processing, after the SyncFlow seed: several worker processes, each uploaded
file processed exactly once under a lock, results recorded as events.

SyncFlow's flow: an upload service publishes ``file.uploaded``; processing services consume it,
take a distributed lock so that a file is processed only once even when the message is delivered
twice or to several replicas, extract metadata (size, hash, ...), and publish ``file.processed``,
which a notification service consumes. Here Syros is the lock, the event log and the cache:

- the "upload service" (this process) writes files and appends one ``file.uploaded`` event per
  file to ``<run>-uploads`` -- every file twice, as an at-least-once broker would;
- ``--workers`` processor processes follow that stream; for each upload they take the lock
  ``<run>:file:<id>`` (without waiting: someone else has it), skip files already processed (their
  ``<run>-file-<id>`` stream exists), extract metadata, cache it (tag ``<run>``), and append
  ``file.processed`` to the file's stream (expected version: no stream, so a second processing
  could never be recorded) and to ``<run>-processed``;
- the "notification service" (this process again) follows ``<run>-processed`` live and reports.

Run against a server (``syros serve``)::

    python examples/python/file_processor.py 127.0.0.1:9090 --files 24 --workers 4

It checks its own outcome and exits non-zero if any file was processed twice, or not at all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import syros


def extract_metadata(path: Path) -> dict:
    """The "processing": what SyncFlow's processing service extracts from an upload."""
    data = path.read_bytes()
    time.sleep(0.02)  # pretend this is expensive (thumbnails, transcoding, ...)
    return {
        "name": path.name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "lines": data.count(b"\n"),
    }


def run_worker(address: str, run: str, expected_uploads: int, worker_name: str) -> int:
    """One processing service replica. Prints a JSON summary of what it did."""
    client = syros.Client([address], owner=worker_name)
    processed, skipped_locked, skipped_done = [], 0, 0
    seen = 0
    with client.events.subscribe(f"{run}-uploads", syros.START) as uploads:
        for event in uploads:
            seen += 1
            upload = event.data
            file_id = upload["file_id"]
            lease = client.try_lock(f"{run}:file:{file_id}", ttl=10.0)
            if lease is None:
                skipped_locked += 1  # another replica is on it right now
            else:
                with lease:
                    if client.events.read(f"{run}-file-{file_id}", limit=1).exists:
                        skipped_done += 1  # a redelivery of a file already processed
                    else:
                        metadata = extract_metadata(Path(upload["path"]))
                        client.cache.set(f"{run}:meta:{file_id}", json.dumps(metadata), ttl=3600.0, tags=[run])
                        done = syros.Event(
                            "file.processed",
                            {"file_id": file_id, "worker": worker_name, "fencing_token": lease.fencing_token, **metadata},
                        )
                        # NO_STREAM: even if two replicas got here, only one result could be recorded.
                        client.events.append(f"{run}-file-{file_id}", done, expected_version=syros.NO_STREAM)
                        client.events.append(f"{run}-processed", done)
                        processed.append(file_id)
            if seen == expected_uploads:
                break
    print(json.dumps({"worker": worker_name, "processed": processed, "skipped_locked": skipped_locked, "skipped_done": skipped_done}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", nargs="?", default="127.0.0.1:9090")
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker", nargs=3, metavar=("RUN", "UPLOADS", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run, uploads, name = args.worker
        return run_worker(args.address, run, int(uploads), name)

    client = syros.Client([args.address])
    run = f"syncflow-{uuid.uuid4().hex[:10]}"
    workdir = Path(tempfile.mkdtemp(prefix="syncflow-"))

    # The upload service: files land in storage, file.uploaded is published (twice: redelivery).
    files = {}
    for i in range(args.files):
        file_id = f"f{i:03d}"
        path = workdir / f"upload-{file_id}.txt"
        path.write_bytes(os.urandom(64).hex().encode() + b"\n" * (i + 1))
        files[file_id] = path
    uploads = [syros.Event("file.uploaded", {"file_id": f, "path": str(p)}) for f, p in files.items()]
    expected_uploads = 2 * len(uploads)

    notifications = client.events.subscribe(f"{run}-processed", syros.START)
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, args.address, "--worker", run, str(expected_uploads), f"processor-{n}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(args.workers)
    ]
    client.events.append(f"{run}-uploads", uploads, expected_version=syros.NO_STREAM)
    client.events.append(f"{run}-uploads", uploads, expected_version=len(uploads) - 1)

    # The notification service: one line per processed file, live.
    notified = []
    while len(notified) < len(files):
        event = notifications.next(timeout=60)
        if event is None:
            print(f"FAILED: only {len(notified)} of {len(files)} files were processed", file=sys.stderr)
            return 1
        notified.append(event.data)
        print(f"  processed {event.data['name']:<20} by {event.data['worker']:<12} sha256={event.data['sha256'][:12]}…")
    notifications.close()

    summaries = []
    for proc in workers:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            print(f"FAILED: a worker exited with {proc.returncode}", file=sys.stderr)
            return 1
        summaries.append(json.loads(out.strip().splitlines()[-1]))

    # Check the outcome: every file exactly once, with the right metadata.
    failures = []
    counts = Counter(file_id for s in summaries for file_id in s["processed"])
    for file_id, path in files.items():
        if counts[file_id] != 1:
            failures.append(f"{file_id} was processed {counts[file_id]} times")
        history = client.events.read(f"{run}-file-{file_id}")
        if len(history.events) != 1:
            failures.append(f"{file_id} has {len(history.events)} file.processed events")
        expected = hashlib.sha256(path.read_bytes()).hexdigest()
        cached = client.cache.get(f"{run}:meta:{file_id}")
        if cached is None or json.loads(cached)["sha256"] != expected:
            failures.append(f"{file_id}: cached metadata missing or wrong")
    processed_log = client.events.read(f"{run}-processed", limit=1000).events
    if len(processed_log) != len(files):
        failures.append(f"{len(processed_log)} file.processed events for {len(files)} files")
    # Every replica sees every delivery once: it either processed it or skipped it.
    for s in summaries:
        handled = len(s["processed"]) + s["skipped_locked"] + s["skipped_done"]
        if handled != expected_uploads:
            failures.append(f"{s['worker']} handled {handled} of {expected_uploads} deliveries")
    for s in summaries:
        print(f"  {s['worker']}: processed {len(s['processed'])}, skipped {s['skipped_locked']} (locked) + {s['skipped_done']} (already done)")
    print(f"cache entries dropped with the run's tag: {client.cache.invalidate_tag(run)}")
    if failures:
        for failure in failures:
            print("FAILED:", failure, file=sys.stderr)
        return 1
    print(f"OK: {len(files)} files, {expected_uploads} deliveries, {args.workers} workers: each file processed exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
