#!/usr/bin/env python3
"""A fixed number of HTTP/1.1 GET requests over keep-alive TLS connections, in phases.

Used by bench/instructions.sh. Opens CONNS connections (TLS handshake and one request each,
part of the first phase), then runs the phases in order on those same connections; the
requests of a phase are spread evenly over the connections, which send concurrently (one
thread each, one request in flight per connection). After each phase it runs the --hook
command (a shell string, `{phase}` replaced by the phase's name) and waits for it, so the
caller can dump counters between phases with no request in flight.

    fixed_requests.py --port 8443 --path /x -H 'Authorization: Bearer T' \\
        --phase warmup:200 --phase idle:sleep:3 --phase n1:500 --phase n2:2000 \\
        --hook '/path/to/hook.sh {phase}'

A phase is NAME:COUNT (COUNT requests) or NAME:sleep:SECONDS (no request, connections left
open and idle). Every answer must be 200: the others are counted (and a dropped connection
is reopened, counted as an error, so the count sent stays exact). Prints one JSON object per
phase on stdout, and the negotiated TLS version, cipher suite and ALPN once on stderr.
"""
import argparse
import http.client
import json
import shlex
import ssl
import subprocess
import sys
import threading
import time


def parse_phase(spec):
    parts = spec.split(":")
    if len(parts) == 2:
        return parts[0], "requests", int(parts[1])
    if len(parts) == 3 and parts[1] == "sleep":
        return parts[0], "sleep", float(parts[2])
    raise SystemExit(f"bad phase {spec!r}: NAME:COUNT or NAME:sleep:SECONDS")


class Conn:
    def __init__(self, host, port, ctx, timeout):
        self.host, self.port, self.ctx, self.timeout = host, port, ctx, timeout
        self.c = None
        self.reconnects = 0

    def open(self):
        self.c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                             timeout=self.timeout)
        self.c.connect()

    def get(self, path, headers):
        """One request; returns the status (0 for a transport error, the connection reopened)."""
        try:
            self.c.request("GET", path, headers=headers)
            r = self.c.getresponse()
            r.read()
            if r.getheader("connection", "").lower() == "close":
                self.c.close()
                self.reconnects += 1
                self.open()
            return r.status
        except (OSError, http.client.HTTPException) as e:
            print(f"fixed_requests: {type(e).__name__}: {e}", file=sys.stderr)
            try:
                self.c.close()
            except Exception:
                pass
            self.reconnects += 1
            self.open()
            return 0


def run_requests(conns, count, path, headers):
    per = [count // len(conns) + (1 if i < count % len(conns) else 0) for i in range(len(conns))]
    results = [dict() for _ in conns]

    def work(i):
        statuses = results[i]
        for _ in range(per[i]):
            s = conns[i].get(path, headers)
            statuses[s] = statuses.get(s, 0) + 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(conns))]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    total = {}
    for r in results:
        for s, n in r.items():
            total[s] = total.get(s, 0) + n
    return total, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("-H", "--header", action="append", default=[])
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--phase", action="append", default=[], type=parse_phase)
    ap.add_argument("--hook", default="")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    headers = {"Host": f"{a.host}:{a.port}"}
    for h in a.header:
        k, v = h.split(":", 1)
        headers[k.strip()] = v.strip()

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])

    conns = [Conn(a.host, a.port, ctx, a.timeout) for _ in range(a.conns)]
    t0 = time.monotonic()
    for c in conns:
        c.open()
    s = conns[0].c.sock
    print(f"fixed_requests: {s.version()} {s.cipher()[0]} alpn={s.selected_alpn_protocol()} "
          f"({a.conns} connections opened in {time.monotonic() - t0:.2f}s)", file=sys.stderr)

    for name, kind, n in a.phase:
        before = sum(c.reconnects for c in conns)
        if kind == "sleep":
            time.sleep(n)
            out = {"phase": name, "requests": 0, "ok": 0, "non200": 0, "seconds": n}
        else:
            total, elapsed = run_requests(conns, n, a.path, headers)
            ok = total.get(200, 0)
            out = {"phase": name, "requests": n, "ok": ok, "non200": n - ok,
                   "statuses": {str(k): v for k, v in sorted(total.items())},
                   "seconds": round(elapsed, 3)}
        out["reconnects"] = sum(c.reconnects for c in conns) - before
        sock = conns[0].c.sock
        out["tls"] = f"{sock.version()} {sock.cipher()[0]}" if sock else "?"
        if a.hook:
            t = time.monotonic()
            subprocess.run(a.hook.replace("{phase}", shlex.quote(name)), shell=True, check=True)
            out["hook_seconds"] = round(time.monotonic() - t, 3)
        print(json.dumps(out), flush=True)

    for c in conns:
        c.c.close()


if __name__ == "__main__":
    main()
