#!/usr/bin/env python3
"""Writes the hand-made seed inputs into fuzz/corpus/<target>/seed-*.

Run from anywhere: python3 fuzz/make_seeds.py. The fuzzers grow the corpus from these; the
minimised result is what is committed. Input formats are described in fuzz/src/checks.rs.
"""
import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def req(line, *fields, body=b""):
    out = line.encode() + b"\r\n"
    for f in fields:
        out += (f.encode() if isinstance(f, str) else f) + b"\r\n"
    return out + b"\r\n" + body


H = "Host: example.com"

HEADS = [
    req("GET / HTTP/1.1", H),
    req("GET /index.html?x=1&y=2 HTTP/1.1", H, "User-Agent: curl/7.88", "Accept: */*"),
    req("HEAD /file HTTP/1.1", H),
    req("POST /submit HTTP/1.1", H, "Content-Length: 5", body=b"hello"),
    req("POST /up HTTP/1.1", H, "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
    req("PUT /x HTTP/1.1", H, "Content-Length: 0"),
    req("DELETE /x HTTP/1.1", H),
    req("OPTIONS * HTTP/1.1", H),
    req("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"),
    req("GET http://example.com/abs?q HTTP/1.1", H),
    req("GET https://EXAMPLE.com HTTP/1.1", H),
    req("GET / HTTP/1.0"),
    req("GET / HTTP/1.0", "Connection: keep-alive"),
    req("GET / HTTP/1.1", H, "Connection: close"),
    req("POST / HTTP/1.1", H, "Expect: 100-continue", "Content-Length: 3", body=b"abc"),
    req("GET / HTTP/1.1", H, "Expect: something-else"),
    req("PATCH /p HTTP/1.1", H, "Content-Length: 2, 2", body=b"ok"),
    req("GET / HTTP/2.0", H),
    req("GET / HTTP/1.2", H),
    req("GET / HTTP/1.1"),
    req("GET / HTTP/1.1", H, H),
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    req("GET / HTTP/1.1", H, "X-Folded: a", " b"),
    req("GET / HTTP/1.1", H, "Bad Name: x"),
    req("GET / HTTP/1.1", H, "Space : x"),
    req("GET / HTTP/1.1", H, b"X-Nul: a\x00b"),
    req("GET / HTTP/1.1", H, b"X-CR: a\rb"),
    req("GET / HTTP/1.1", H, b"X-Obs: caf\xc3\xa9"),
    req("GET  / HTTP/1.1", H),
    req("GET /#frag HTTP/1.1", H),
    req("G@T / HTTP/1.1", H),
    req("GET / HTTP/1.1", "Host: user@evil"),
    req("GET http://user@host/ HTTP/1.1", H),
    req("GET / HTTP/1.1", H, *["X-F%d: v" % i for i in range(20)]),
    req("GET /" + "a" * 200 + " HTTP/1.1", H),
    req("GET / HTTP/1.1", H, "X-Long: " + "b" * 300),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    # smuggling vectors (RFC 9112 §6.1, §6.3)
    req("POST / HTTP/1.1", H, "Content-Length: 6", "Transfer-Encoding: chunked", body=b"0\r\n\r\nX"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked", "Content-Length: 3", body=b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding: xchunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding:  chunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked", "Transfer-Encoding: identity", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding:\tchunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding: chunked;q=1", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding : chunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Transfer-Encoding:", " chunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.0", H, "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", H, "Content-Length: 5", "Content-Length: 6", body=b"hello!"),
    req("POST / HTTP/1.1", H, "Content-Length: +5", body=b"hello"),
    req("POST / HTTP/1.1", H, "Content-Length: 0x5", body=b"hello"),
    req("POST / HTTP/1.1", H, "Content-Length: 5 5", body=b"hello"),
    req("POST / HTTP/1.1", H, "Content-Length: 99999999999999999999999"),
    req("POST / HTTP/1.1", H, "Content-Length: -1"),
]

CHUNKED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"0\r\n\r\n",
    b"0\r\n\r\nGET / HTTP/1.1\r\n",
    b"A\r\n0123456789\r\n0\r\n\r\n",
    b"a;ext=1\r\n0123456789\r\n0;last\r\n\r\n",
    b'3;name="quoted \\" value"\r\nabc\r\n0\r\n\r\n',
    b"3 ;a = b ; c\r\nabc\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n",
    b"0\r\nBad Trailer: x\r\n\r\n",
    b"5\nhello\n0\n\n",
    b"5\r\nhelloXX0\r\n\r\n",
    b"ffffffffffffffffff\r\n",
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhel",
    b"\r\n0\r\n\r\n",
    b"1;" + b"x" * 40 + b"\r\na\r\n0\r\n\r\n",
    b"00000000000000000000005\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nA: " + b"b" * 100 + b"\r\n\r\n",
    b"5\r\r\nhello\r\n0\r\n\r\n",
    b"2\r\nab\r\n2\r\ncd\r\n2\r\nef\r\n0\r\n\r\n",
]

CONN = [
    req("GET / HTTP/1.1", "Host: a"),
    req("GET /async HTTP/1.1", "Host: a"),
    req("GET /file HTTP/1.1", "Host: a") + req("GET /own-async HTTP/1.1", "Host: a"),
    req("HEAD /file HTTP/1.1", "Host: a"),
    req("HEAD /big HTTP/1.1", "Host: a") + req("GET /big HTTP/1.1", "Host: a"),
    req("GET /204 HTTP/1.1", "Host: a") + req("GET /304 HTTP/1.1", "Host: a"),
    req("GET /nf HTTP/1.1", "Host: a", "Connection: close") + req("GET /never HTTP/1.1", "Host: a"),
    req("GET /close HTTP/1.1", "Host: a") + req("GET /never HTTP/1.1", "Host: a"),
    req("GET /drop HTTP/1.1", "Host: a"),
    req("GET /async-drop HTTP/1.1", "Host: a") + req("GET / HTTP/1.1", "Host: a"),
    req("POST /echo HTTP/1.1", "Host: a", "Content-Length: 11", body=b"hello world"),
    req("POST /async HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nT: 1\r\n\r\n"),
    req("POST / HTTP/1.1", "Host: a", "Expect: 100-continue", "Content-Length: 4", body=b"data"),
    req("POST / HTTP/1.1", "Host: a", "Expect: nope", "Content-Length: 4", body=b"data"),
    req("POST / HTTP/1.1", "Host: a", "Content-Length: 2000", body=b"x" * 10),
    b"".join(req("GET /async%d HTTP/1.1" % i, "Host: a") for i in range(8)),
    b"".join(req("GET /%s HTTP/1.1" % p, "Host: a") for p in ["async", "file", "async-file", "", "big", "async-own"]),
    req("GET / HTTP/1.0") + req("GET / HTTP/1.0", "Connection: keep-alive"),
    req("GET / HTTP/1.0", "Connection: keep-alive") + req("GET /async HTTP/1.0", "Connection: keep-alive") + req("GET / HTTP/1.0"),
    req("GET / HTTP/1.1", "Host: a") + b"GARBAGE\r\n\r\n",
    req("GET / HTTP/1.1", "Host: a") + b"GET / HTTP/1.1\r\nHost: a\r\n",
    req("POST / HTTP/1.1", "Host: a", "Content-Length: 6", "Transfer-Encoding: chunked", body=b"0\r\n\r\nX"),
    req("POST /async HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", body=b"0\r\n\r\n") + req("GET /smuggled HTTP/1.1", "Host: a"),
    req("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: xchunked", body=b"0\r\n\r\n"),
    req("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n") + req("GET /after HTTP/1.1", "Host: a"),
    req("POST / HTTP/1.1", "Host: a", "Content-Length: 5", body=b"hello") + req("GET /x HTTP/1.1", "Host: a", "Content-Length: 3", "Content-Length: 4"),
    req("GET /" + "a" * 300 + " HTTP/1.1", "Host: a"),
    req("GET / HTTP/1.1", "Host: a", *["X-F%d: v" % i for i in range(20)]),
    req("POST /async HTTP/1.1", "Host: a", "Content-Length: 5", body=b"hel"),
    req("GET /async HTTP/1.1", "Host: a") + req("POST / HTTP/1.1", "Host: a", "Content-Length: 5", body=b"hel"),
    req("GET /async HTTP/1.1", "Host: a") + req("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", body=b"5\r\nhel"),
    b"\r\n\r\n" + req("GET / HTTP/1.1", "Host: a"),
    b"",
]


def conn_input(stream, flags=0, splits=()):
    return bytes([flags | len(splits)]) + bytes(splits) + stream


def chunk_input(stream, flags=0, splits=()):
    return bytes([flags | len(splits)]) + bytes(splits) + stream


def write(target, items):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for data in items:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("parse_head", HEADS)
chunk_items = []
for c in CHUNKED:
    chunk_items.append(chunk_input(c))
    chunk_items.append(chunk_input(c, 0, (1, 3, 2)))
    chunk_items.append(chunk_input(c, 0x40, (5,)))
write("chunked", chunk_items)
conn_items = []
for i, c in enumerate(CONN):
    conn_items.append(conn_input(c))
    conn_items.append(conn_input(c, 0x40 | 0x10, (10, 3, 40)))
    conn_items.append(conn_input(c, 0x80 | 0x20, tuple(range(1, 8))))
write("connection", conn_items)
# Heads also make good connection inputs.
write("connection", [conn_input(h) for h in HEADS])
