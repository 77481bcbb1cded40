#!/usr/bin/env python3
"""Dead letters of a Platform deployment: list them, and replay them to the queues they came from.

A message whose consumer failed all its retries is moved by MassTransit to the queue's `<queue>_error` queue. Every
consumer is idempotent, so once the cause is fixed (a database back, a bug fixed) the message can be sent again:
`replay` moves an error queue's messages back to their queue through a RabbitMQ dynamic shovel that deletes itself
once it has moved the messages that were there when it started (acknowledged only after the broker confirmed each
one, so a message is never lost on the way). Uses only the broker's management HTTP API; its counts are the broker's
statistics, refreshed every 5 s, so a queue just emptied may still show its messages for a moment.

usage: dlq.py AMQP_URI MANAGEMENT_URL list
       dlq.py AMQP_URI MANAGEMENT_URL replay (QUEUE_error | --all)
"""

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ERROR_SUFFIX = "_error"


def main(argv):
    if len(argv) < 3 or argv[2] not in ("list", "replay") or (argv[2] == "replay" and len(argv) != 4):
        print(__doc__.strip().split("\n\n")[-1], file=sys.stderr)
        return 2
    broker = Broker(argv[0], argv[1])
    if argv[2] == "list":
        return list_dead_letters(broker)
    return replay(broker, argv[3])


class Broker:
    def __init__(self, amqp_uri, management_url):
        # A cluster's URI lists its nodes, comma-separated, with one login and vhost: the first one says them.
        uri = urllib.parse.urlsplit(amqp_uri.split(",")[0])
        self.vhost = urllib.parse.unquote(uri.path[1:]) if len(uri.path) > 1 else "/"
        self.base = management_url.rstrip("/") + "/api/"
        credentials = f"{urllib.parse.unquote(uri.username or 'guest')}:{urllib.parse.unquote(uri.password or 'guest')}"
        self.auth = "Basic " + base64.b64encode(credentials.encode()).decode()

    def call(self, method, path, body=None):
        request = urllib.request.Request(self.base + path, method=method, data=None if body is None else json.dumps(body).encode())
        request.add_header("Authorization", self.auth)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return json.loads(text) if text else None

    def quoted_vhost(self):
        return urllib.parse.quote(self.vhost, safe="")

    def error_queues(self):
        queues = self.call("GET", f"queues/{self.quoted_vhost()}?columns=name,messages")
        return sorted(((q["name"], q.get("messages", 0) or 0) for q in queues if q["name"].endswith(ERROR_SUFFIX)))


def list_dead_letters(broker):
    queues = broker.error_queues()
    total = sum(count for _, count in queues)
    for name, count in queues:
        if count:
            print(f"{count:>8}  {name}")
    print(f"{total} dead letter(s) in {sum(1 for _, c in queues if c)} queue(s) of vhost {broker.vhost}")
    return 0


def replay(broker, which):
    queues = dict(broker.error_queues())
    if which == "--all":
        # Every error queue, not only those the statistics call non-empty: the management API's counts can be seconds
        # (for a queue that went quiet, longer) behind, and a shovel on an empty queue just deletes itself.
        chosen = sorted(queues)
    elif which in queues:
        chosen = [which]
    else:
        print(f"no error queue {which} in vhost {broker.vhost} (error queues end in {ERROR_SUFFIX}; see: dlq list)", file=sys.stderr)
        return 1
    local = "amqp:///" + urllib.parse.quote(broker.vhost, safe="")
    for error_queue in chosen:
        source = error_queue[: -len(ERROR_SUFFIX)]
        waiting = queues[error_queue]
        name = f"replay-{error_queue}-{int(time.time() * 1000)}"
        broker.call("PUT", f"parameters/shovel/{broker.quoted_vhost()}/{urllib.parse.quote(name, safe='')}", {"value": {
            "src-protocol": "amqp091", "src-uri": local, "src-queue": error_queue,
            "dest-protocol": "amqp091", "dest-uri": local, "dest-queue": source,
            "src-delete-after": "queue-length", "ack-mode": "on-confirm",
        }})
        # The shovel removes itself once it has moved what the queue held when it started.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                broker.call("GET", f"parameters/shovel/{broker.quoted_vhost()}/{urllib.parse.quote(name, safe='')}")
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    break
                raise
            time.sleep(0.2)
        else:
            print(f"{error_queue}: the replay shovel {name} is still moving after 2 min; see the management UI", file=sys.stderr)
            return 1
        if waiting:
            print(f"replayed {waiting} message(s) from {error_queue} to {source}")
        else:
            print(f"replayed {error_queue} to {source} (the statistics showed it empty)")
    if not chosen:
        print(f"no dead letters in vhost {broker.vhost}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except urllib.error.HTTPError as error:
        print(f"the broker's management API answered {error.code}: {error.read().decode(errors='replace')}", file=sys.stderr)
        sys.exit(1)
    except urllib.error.URLError as error:
        print(f"the broker's management API is not reachable: {error.reason}", file=sys.stderr)
        sys.exit(1)
