#!/usr/bin/env python3
"""What permessage-deflate would save on a WebSocket link (BENCHMARKS.md,
"Cold-join bytes and compression").

Neither our relay's WebSocket library (tungstenite) nor the Node reference
server (ws, off by default on servers) compresses frames, so this measures
what compression would give, from the real bytes:

  deflate_estimate.py capture LISTEN_PORT UPSTREAM_PORT DIR
      A TCP proxy on 127.0.0.1:LISTEN_PORT to 127.0.0.1:UPSTREAM_PORT that
      writes each connection's bytes, each way, to DIR/N.up and DIR/N.down.
      Runs until killed.
  deflate_estimate.py estimate DIR
      Reads the WebSocket frames in those files and prints their bytes as
      sent, and as permessage-deflate would send them (raw deflate, level
      9, each message flushed, the 4-byte tail dropped, RFC 7692), with
      and without context takeover; a frame that would grow is sent as is.
"""
import glob
import itertools
import os
import socket
import sys
import threading
import zlib


def capture(listen_port, upstream_port, out):
    os.makedirs(out, exist_ok=True)
    numbers = itertools.count()

    def pump(src, dst, path):
        with open(path, "wb") as f:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    f.write(data)
                    dst.sendall(data)
            except OSError:
                pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(128)
    print(f"capturing 127.0.0.1:{listen_port} -> 127.0.0.1:{upstream_port} into {out}", flush=True)
    while True:
        client, _ = server.accept()
        n = next(numbers)
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        for src, dst, way in ((client, upstream, "up"), (upstream, client, "down")):
            threading.Thread(target=pump, args=(src, dst, f"{out}/{n}.{way}"), daemon=True).start()


def frames(data):
    """(header bytes, payload) of each frame after the HTTP upgrade."""
    end = data.find(b"\r\n\r\n")
    i = end + 4 if end >= 0 else 0
    while i + 2 <= len(data):
        start = i
        masked, length = data[i + 1] & 0x80, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            length = int.from_bytes(data[i:i + 2], "big")
            i += 2
        elif length == 127:
            length = int.from_bytes(data[i:i + 8], "big")
            i += 8
        key = data[i:i + 4] if masked else None
        i += 4 if masked else 0
        payload = data[i:i + length]
        i += length
        if key:
            payload = bytes(b ^ key[j % 4] for j, b in enumerate(payload))
        yield i - start - length, masked, payload


def header_bytes(length, masked):
    return 2 + (4 if masked else 0) + (2 if 126 <= length < 65536 else 8 if length >= 65536 else 0)


def estimate(directory):
    totals = [0, 0, 0]
    for path in sorted(glob.glob(os.path.join(directory, "*"))):
        data = open(path, "rb").read()
        upgrade = data.find(b"\r\n\r\n") + 4
        sizes = [len(data), upgrade, upgrade]
        stream = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
        for _, masked, payload in frames(data):
            with_context = (stream.compress(payload) + stream.flush(zlib.Z_SYNC_FLUSH))[:-4]
            alone = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
            without_context = (alone.compress(payload) + alone.flush(zlib.Z_SYNC_FLUSH))[:-4]
            for k, packed in ((1, with_context), (2, without_context)):
                n = min(len(packed), len(payload))
                sizes[k] += header_bytes(n, masked) + n
        print(f"{path}: {sizes[0]} bytes; deflated {sizes[1]} with context takeover, {sizes[2]} without")
        totals = [t + s for t, s in zip(totals, sizes)]
    raw, ctx, alone = totals
    print(f"all: {raw} bytes; deflated {ctx} ({ctx / raw:.2f}x) with context takeover, {alone} ({alone / raw:.2f}x) without")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "capture":
        capture(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "estimate":
        estimate(sys.argv[2])
    else:
        sys.exit(__doc__)
