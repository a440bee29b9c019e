#!/usr/bin/env python3
"""gw_client.py - raw-socket clients for tests/e2e/test_gw_proxy.sh (what curl cannot do).

  raw HOST PORT HEX          send bytes (hex), print what comes back and whether the
                             server closed ("<EOF>") or went quiet ("<OPEN>"), within 3 s
  sse HOST PORT PATH         GET PATH, print "<seconds since request> <line>" per data: line
  load HOST PORT PATH SECS N N keep-alive clients for SECS; print "sent=S ok=O other=..."
  slowloris HOST PORT N SECS N connections trickle a head (one line per 0.3 s); print how
                             many the server closed within SECS and the seconds it took
  conns HOST PORT N          open N idle connections, then print how many got a 503
"""
import socket
import sys
import threading
import time


def connect(host, port, timeout=3.0):
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw(host, port, hexdata):
    s = connect(host, port)
    s.sendall(bytes.fromhex(hexdata))
    out = b""
    end = time.time() + 3
    tail = "<OPEN>"
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            tail = "<EOF>"
            break
        if not d:
            tail = "<EOF>"
            break
        out += d
    sys.stdout.write(out.decode("latin-1") + tail + "\n")


def read_response(s, buf):
    """One response (Content-Length or chunked) from s; returns (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, v = l.split(b":", 1)
        hdrs[k.strip().lower()] = v.strip()
    if b"content-length" in hdrs:
        n = int(hdrs[b"content-length"])
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                raise EOFError
            buf += d
        return status, buf[:n], buf[n:], hdrs
    if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += s.recv(65536)
            line, buf = buf.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            while len(buf) < n + 2:
                d = s.recv(65536)
                if not d:
                    raise EOFError
                buf += d
            body += buf[:n]
            buf = buf[n + 2:]
            if n == 0:
                return status, body, buf, hdrs
    return status, b"", buf, hdrs


def sse(host, port, path):
    s = connect(host, port, 10)
    t0 = time.time()
    s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"data:"):
                print("%.3f %s" % (time.time() - t0, line.decode()))
                sys.stdout.flush()
        if buf.endswith(b"0\r\n\r\n") and b"data" not in buf:
            break


def load(host, port, path, secs, n):
    stats = {"sent": 0, "ok": 0, "other": 0, "errors": 0}
    lock = threading.Lock()
    stop = time.time() + float(secs)

    def worker():
        s = None
        buf = b""
        while time.time() < stop:
            try:
                if s is None:
                    s = connect(host, port)
                    buf = b""
                with lock:
                    stats["sent"] += 1
                s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
                st, body, buf, h = read_response(s, buf)
                with lock:
                    stats["ok" if st == 200 else "other"] += 1
                if h.get(b"connection", b"").lower() == b"close":
                    s.close()
                    s = None
            except Exception as e:
                with lock:
                    stats["errors"] += 1
                sys.stderr.write("load: %r\n" % e)
                s = None
    ts = [threading.Thread(target=worker) for _ in range(int(n))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("sent=%d ok=%d other=%d errors=%d" % (stats["sent"], stats["ok"], stats["other"],
                                                 stats["errors"]))


def slowloris(host, port, n, secs):
    socks = []
    for _ in range(int(n)):
        s = connect(host, port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        s.setblocking(False)
        socks.append(s)
    t0 = time.time()
    closed = set()
    i = 0
    while time.time() - t0 < float(secs) and len(closed) < len(socks):
        for k, s in enumerate(socks):
            if k in closed:
                continue
            try:
                d = s.recv(4096)
                if not d or d.startswith(b"HTTP/1.1 408"):
                    closed.add(k)
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed.add(k)
                continue
            try:
                s.send(b"X-Trickle-%d: x\r\n" % i)
            except OSError:
                closed.add(k)
        i += 1
        time.sleep(0.3)
    print("closed=%d of %d after %.1f s" % (len(closed), len(socks), time.time() - t0))


def conns(host, port, n):
    socks = []
    for _ in range(int(n)):
        try:
            socks.append(connect(host, port, 1))
        except OSError:
            pass
    # a loaded machine accepts late: collect the 503s for up to 5 s
    busy, seen, end = 0, set(), time.time() + 5
    while time.time() < end and len(seen) < len(socks):
        for k, s in enumerate(socks):
            if k in seen:
                continue
            s.settimeout(0.01)
            try:
                d = s.recv(4096)
                seen.add(k)
                busy += d.startswith(b"HTTP/1.1 503")
            except socket.timeout:
                pass
            except OSError:
                seen.add(k)
        if busy >= len(socks) - 80:
            break
    print("busy=%d of %d" % (busy, len(socks)))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"raw": raw, "sse": sse, "load": load, "slowloris": slowloris, "conns": conns}[cmd](*args)
