#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, sends one GET on each
and reads its response (so every connection is an idle keep-alive one, past
its first request), prints "ready N" and holds them until killed."""
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle-conns\r\n\r\n"
conns = []
ok = 0
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    s.settimeout(10)
    data = b""
    # Small fixed-size responses: read until the head and the body are in.
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    if head.startswith(b"HTTP/1.1 200") and len(body) >= length:
        ok += 1
    conns.append(s)
print(f"ready {ok}", flush=True)
while True:
    time.sleep(3600)
