"""Client CPU per outbound provider request: the adapters' session against requests' default.

What it measures: ``--requests`` keep-alive ``GET`` requests with basic auth (as a carrier's API
call is made) to a local HTTP server in a process of its own, from one thread, through two
sessions in turn: ``requests.Session()`` as requests builds it, which reads the environment
(proxies, a CA bundle, a netrc file) at every request, and the session the adapters use
(``connector.kernel.http.new_session``), which reads it once when it sets no proxy and no netrc
file. Printed: the client thread's CPU time per request for each, alternating rounds so the
machine's drift falls on both, and the medians' difference. A text-back makes two such requests
(the line-type lookup and the text).

The saving grows with the size of the environment (requests scans every variable); the table
says how many variables this one has.

Run: ``.venv/bin/python bench/outbound_request.py [--requests 2000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import requests
from _common import REPO, print_table, run

from connector.kernel.http import new_session

#: The server: answers every GET with two bytes over HTTP/1.1 keep-alive, prints its port.
_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def cpu_per_request(session: requests.Session, url: str, count: int) -> float:
    """Microseconds of this thread's CPU per request, after 200 to warm the connection."""
    session.auth = ("AC-bench", "bench-token")
    for _ in range(200):
        session.get(url, timeout=5)
    start = time.thread_time()
    for _ in range(count):
        session.get(url, timeout=5)
    return (time.thread_time() - start) * 1e6 / count


def main() -> int:
    """Alternate the two sessions for ``--rounds`` rounds; print each round and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per session a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/2010-04-01/Messages.json"
        default, ours = [], []
        for _ in range(args.rounds):
            default.append(cpu_per_request(requests.Session(), url, args.requests))
            ours.append(cpu_per_request(new_session(), url, args.requests))
    finally:
        server.terminate()
        server.wait()
    reads_environment = new_session().trust_env
    print(f"{args.requests} requests per session a round; {len(os.environ)} environment "
          f"variables; the adapters' session reads the environment at every request: "
          f"{'yes (a proxy or netrc file is set)' if reads_environment else 'no'}\n")
    rows = [[f"round {n + 1}", f"{d:.0f}", f"{o:.0f}", f"{d - o:.0f}"]
            for n, (d, o) in enumerate(zip(default, ours, strict=True))]
    median_default, median_ours = statistics.median(default), statistics.median(ours)
    rows.append(["median", f"{median_default:.0f}", f"{median_ours:.0f}",
                 f"{median_default - median_ours:.0f}"])
    print_table(["", "requests' default us", "adapters' session us", "saved us"], rows)
    return 0


if __name__ == "__main__":
    run(main)
