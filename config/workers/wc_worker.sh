#!/bin/sh
# A Barista exec worker in shell: answers each job with the number of words in its payload.
# Barista starts one per worker of a `plugin: exec` pool and keeps it running; each stdin line
# is one JSON message, each stdout line one answer (docs/workers.md#the-exec-protocol). jq does
# the JSON; install it with `apt-get install jq`.
set -eu
while IFS= read -r line; do
  id=$(printf '%s' "$line" | jq -r '.id // empty')
  [ -n "$id" ] || continue  # {"cancel": …}: nothing runs between lines here
  words=$(printf '%s' "$line" | jq -r '.payload' | wc -w)
  jq -cn --arg id "$id" --arg out "$words" '{id: $id, status: "ok", output: $out}'
done
