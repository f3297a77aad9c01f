#!/usr/bin/env python3
"""How long a batch's last syncs take in the two orders Batch::finish could use.

  results first: append a result line, fdatasync results.jsonl, then write the summary's temp
                 file and fsync it, rename it to summary.json, fsync the folder;
  summary first: append a result line, write the summary's temp file and start its write-back
                 (sync_file_range), fdatasync results.jsonl, fsync the temp file, rename, fsync
                 the folder (what common::DurableWrite does).

Usage: sync_order.py [FOLDER] [ROUNDS]   (FOLDER on the file system to measure; default: a
temporary folder under /var/tmp, which is on disk where /tmp may be a tmpfs)."""
import ctypes
import os
import shutil
import statistics
import sys
import tempfile
import time

SYNC_FILE_RANGE_WRITE = 2
libc = ctypes.CDLL(None, use_errno=True)
sync_file_range = libc.sync_file_range
sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]

LINE = b'{"id":"1","status":"ok","attempts":1,"ms":0.01,"output":"x"}\n'
SUMMARY = b"x" * 223 + b"\n"


def one_round(folder: str, summary_first: bool) -> float:
    os.mkdir(folder)
    results = os.open(os.path.join(folder, "results.jsonl"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    tmp = os.path.join(folder, ".summary.json.tmp")
    start = time.perf_counter()
    os.write(results, LINE)
    if summary_first:
        summary = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(summary, SUMMARY)
        sync_file_range(summary, 0, 0, SYNC_FILE_RANGE_WRITE)
        os.fdatasync(results)
        os.fsync(summary)
    else:
        os.fdatasync(results)
        summary = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(summary, SUMMARY)
        os.fsync(summary)
    os.close(summary)
    os.rename(tmp, os.path.join(folder, "summary.json"))
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dir_fd)
    os.close(dir_fd)
    elapsed = (time.perf_counter() - start) * 1000
    os.close(results)
    return elapsed


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else None
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    root = tempfile.mkdtemp(prefix="barista-sync-", dir=base or "/var/tmp")
    try:
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(rounds):  # the two orders alternate, so both see the same disk
            for first in (False, True):
                times[first].append(one_round(os.path.join(root, f"{int(first)}-{i}"), first))
        for first, label in ((False, "results first"), (True, "summary first")):
            t = sorted(times[first])
            print(f"{label}: p50 {statistics.median(t):.3f} ms, "
                  f"p90 {t[len(t) * 9 // 10]:.3f} ms over {rounds} rounds")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
