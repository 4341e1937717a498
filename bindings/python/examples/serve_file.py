"""Serve a directory over HTTP with zerohttp: python serve_file.py [DIR] [ADDR]"""
import os, signal, sys, urllib.parse, zerohttp

root = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else ".")

def handler(request):
    path = os.path.realpath(os.path.join(root, urllib.parse.unquote(request.path).lstrip("/")))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        return request.respond(404, "not found\n")
    request.serve_file(path)  # 200/206/304 decided by the engine; the bytes go by sendfile

def stop(signum, frame):
    raise KeyboardInterrupt  # engine.run() shuts the engine down on it, as on Ctrl-C

# `kill PID` and service managers send SIGTERM. SIGINT (Ctrl-C) is left as Python sets it: a
# shell without job control starts background commands with SIGINT ignored, on purpose.
signal.signal(signal.SIGTERM, stop)

with zerohttp.Engine(handler) as engine:
    port = engine.listen(sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:8000")
    print(f"serving {root} on port {port}", flush=True)
    try:
        engine.run()  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        pass
