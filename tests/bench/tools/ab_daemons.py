#!/usr/bin/env python3
"""Two builds of baristad side by side: the same batch to each in turn, many rounds.

Each daemon gets its own spool and socket under a temporary folder on disk (/var/tmp) and one
pool; the rounds alternate which daemon goes first, so that a host that gets slower or faster
during the measurement weighs on both alike. Prints each build's median and every sample of
`submit --wait` (wall clock, from the CLI's start to its exit) and of the batch's own
`seconds` (summary.json).

  ab_daemons.py OLD_BARISTAD NEW_BARISTAD [--workers 2] [--queue 1024] [--plugin echo]
                [--lines 1000000] [--rounds 10] [--barista BIN] [--plugins DIR]

To compare a change against its parent, build the parent in a worktree:
  git worktree add /tmp/old HEAD~1 && cmake -S /tmp/old -B /tmp/old/b -DCMAKE_BUILD_TYPE=Release
  cmake --build /tmp/old/b --target baristad
  tests/bench/tools/ab_daemons.py /tmp/old/b/bin/baristad build-bench/bin/baristad"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE.parents[2] / "build-bench"


def start(binary: str, folder: Path, plugins: str, pool: dict) -> subprocess.Popen:
    folder.mkdir()
    config = folder / "barista.yaml"
    settings = ", ".join(f"{k}: {json.dumps(v)}" for k, v in pool.items())
    config.write_text(f"spool: {json.dumps(str(folder / 'spool'))}\n"
                      f"control_socket: {json.dumps(str(folder / 'sock'))}\n"
                      f"plugin_path: [{json.dumps(plugins)}]\n"
                      "log_level: warn\n"
                      f"pools:\n  p: {{{settings}}}\n")
    proc = subprocess.Popen([binary, "--config", str(config)], stdin=subprocess.DEVNULL,
                            stdout=open(folder / "log", "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(folder / "sock"))
                return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{binary} stopped at start: {(folder / 'log').read_text()}")
            time.sleep(0.05)
    sys.exit(f"{binary} did not open its socket")


def one_batch(barista: str, folder: Path, batch: Path) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([barista, "--socket", str(folder / "sock"), "submit", "p", str(batch),
                          "--wait"], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    summary = json.loads(out.splitlines()[-1])
    if summary["ok"] != summary["jobs"]:
        sys.exit(f"not every job ok: {summary}")
    shutil.rmtree(folder / "spool" / "p" / "done")  # the next batch finds a clean pool
    (folder / "spool" / "p" / "done").mkdir()
    return wall, summary["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=1024)
    parser.add_argument("--plugin", default="echo")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--barista", default=str(BUILD / "bin" / "barista"))
    parser.add_argument("--plugins", default=str(BUILD / "plugins"))
    args = parser.parse_args()
    pool = {"plugin": args.plugin, "workers": args.workers, "queue": args.queue}
    with tempfile.TemporaryDirectory(prefix="barista-ab-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        batch = work / "batch.txt"
        batch.write_text("".join(f"{i}\n" for i in range(1, args.lines + 1)))
        builds = {"old": args.old, "new": args.new}
        daemons = {who: start(binary, work / who, args.plugins, pool)
                   for who, binary in builds.items()}
        samples: dict[str, list[tuple[float, float]]] = {who: [] for who in builds}
        try:
            for who in builds:  # a first batch each, not counted: caches warm
                one_batch(args.barista, work / who, batch)
            for r in range(args.rounds):
                for who in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    samples[who].append(one_batch(args.barista, work / who, batch))
        finally:
            for proc in daemons.values():
                proc.terminate()
                proc.wait()
    print(f"{args.lines:,} lines, {args.plugin}, {args.workers} workers, queue {args.queue}, "
          f"{args.rounds} rounds, medians:")
    for who, binary in builds.items():
        walls = [w for w, _ in samples[who]]
        owns = [s for _, s in samples[who]]
        print(f"  {who} ({binary}): submit --wait {statistics.median(walls):.3f} s, "
              f"summary seconds {statistics.median(owns):.3f} s")
        print("    every round: " + " ".join(f"{w:.3f}" for w in walls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
