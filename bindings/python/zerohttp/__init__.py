"""zerohttp — Python bindings (pure ctypes) for libzerohttp, an HTTP/1.1 server engine whose
response bodies are chains of chunks: bytes, lent memory, file regions sent by ``sendfile``,
pipes spliced to the socket, and callbacks; request bodies can go straight into a file.

    import zerohttp

    def handler(request):
        request.respond(200, b"hello\\n", {"Content-Type": "text/plain"})

    with zerohttp.Engine(handler, threads=2) as engine:
        port = engine.listen("127.0.0.1:0")
        engine.run()

The engine's worker threads run without the GIL; handlers take it (see ``zerohttp._core``).
The library is found through ``$ZEROHTTP_LIBRARY`` (or ``$ZEROHTTP_LIB``), then next to this
package, then on the system (see ``zerohttp._ffi``).
"""

from . import _ffi as ffi
from ._core import (
    LEND_THRESHOLD,
    LOG_LEVELS,
    PENDING,
    ClosedError,
    Engine,
    Request,
    Response,
    SocketTransport,
    Source,
    Stream,
    Transport,
    ZhError,
    result_str,
    version,
)
from ._ffi import *  # noqa: F401,F403 - the ZH_* constants
from ._ffi import LibraryNotFound, library_path

__version__ = "0.1.0"

__all__ = [
    "ClosedError",
    "Engine",
    "LEND_THRESHOLD",
    "LibraryNotFound",
    "LOG_LEVELS",
    "PENDING",
    "Request",
    "Response",
    "SocketTransport",
    "Source",
    "Stream",
    "Transport",
    "ZhError",
    "ffi",
    "library_path",
    "result_str",
    "version",
] + [name for name in dir(ffi) if name.startswith("ZH_")]
