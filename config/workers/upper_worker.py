#!/usr/bin/env python3
"""A Barista exec worker in Python: upper-cases each job's payload.

Barista starts one of these per worker of a `plugin: exec` pool and keeps it running. It reads
one JSON object a line on stdin and answers each job with one line on stdout
(docs/workers.md#the-exec-protocol):

    in:  {"id":"17","payload":"hello","attempt":1,"key":"…","deadline_ms":29500}
         {"cancel":"17"}
    out: {"id":"17","status":"ok","output":"HELLO"}
         {"id":"17","status":"fail","error":"…"}      retried up to the pool's retries
         {"id":"17","status":"fatal","error":"…"}     never retried
         {"id":"17","status":"throttle","retry_after_ms":1000,"error":"…"}

Copy it and replace work(). Print nothing else on stdout (use stderr for logs: it goes to the
daemon's log). Flush after every answer.
"""
import json
import os
import sys


def work(payload):
    """The job. Raise ValueError for a bad input (fatal), any other exception to retry."""
    if payload == "":
        raise ValueError("empty payload")
    crash_on = os.environ.get("UPPER_CRASH_ON")
    if crash_on and payload == crash_on:
        os._exit(70)  # stands for a worker that dies: the daemon charges the job a crash
    return payload.upper()


def main():
    for line in sys.stdin:
        message = json.loads(line)
        if "cancel" in message:
            continue  # one job at a time, answered before the next line is read
        job_id = message["id"]
        try:
            answer = {"id": job_id, "status": "ok", "output": work(message["payload"])}
        except ValueError as e:
            answer = {"id": job_id, "status": "fatal", "error": str(e)}
        except Exception as e:  # noqa: BLE001 - any other failure is worth a retry
            answer = {"id": job_id, "status": "fail", "error": str(e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
