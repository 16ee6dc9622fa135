"""``fastcnn serve MODEL``: a local page to draw a digit on and watch the network answer.

The page (``fastcnn/page/``, shipped as package data) posts the drawn canvas as a PNG to
``POST /predict``; the server reads it with :func:`fastcnn.images.load_digit`, the very function
``fastcnn predict`` calls (the MNIST recipe: the ink's box scaled into 20x20, centred by mass in
28x28), runs ``Network.predict`` on it, and answers JSON: the digit, the ten outputs, the 28x28
image the network saw and the first convolution's feature maps.

The server is the standard library's :class:`http.server.ThreadingHTTPServer`. That is enough for
this: a demo for one person on their own machine, a handful of requests a second, bound to
127.0.0.1 unless ``--host`` says otherwise. It needs no dependency, and the parts a local demo
needs it lacks are a few lines here: a bound on request bodies (1 MB, else 413 before reading
it, then a short lingering close so the client still reads the answer), a socket timeout, a
deeper listen queue, one log line per request or fault and never a traceback. It is not a production server (no TLS, no HTTP/2, a thread per connection): do not
expose it to a network you do not trust.

Only the page's own files are served, from a fixed table of names loaded from the package at
start; a URL is looked up in that table and never becomes a filesystem path, so ``/../x`` is a
404 like any unknown path. The network is not thread-safe (layers keep their last input), so
predictions take a lock; each costs well under a millisecond.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from .network import Network

# Only the standard library at import time: the command line builds its parser from this module.

MAX_BODY = 1 << 20  # bytes: a 280x280 canvas as PNG is ~5-20 kB
SOCKET_TIMEOUT = 10.0  # seconds a client may take to send its request
# After refusing a body unread: how long and how much of it to read and drop before closing, so
# the answer reaches a client still sending instead of a connection reset ("lingering close").
LINGER_SECONDS, LINGER_BYTES = 2.0, 8 * MAX_BODY
# URL path -> (file in fastcnn/page/, content type). Nothing else is ever served.
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the installed package (a wheel ships them)."""
    from importlib.resources import files

    page = files("fastcnn").joinpath("page")
    return {
        url: (page.joinpath(name).read_bytes(), kind) for url, (name, kind) in PAGE_FILES.items()
    }


class Analyser:
    """What the page shows for one PNG: ``fastcnn predict``'s answer and the network's view."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.lock = threading.Lock()
        self.workdir = tempfile.mkdtemp(prefix="fastcnn-serve-")
        self.conv = next(
            (i for i, layer in enumerate(network.layers) if type(layer).__name__ == "Convolution"),
            None,
        )

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def digit(self, png: bytes) -> Any:
        """The 28x28 digit ``fastcnn predict`` would make of this file: load_digit itself, on a
        private temporary copy (it reads files, and checks size and format as it does)."""
        from .images import load_digit

        fd, path = tempfile.mkstemp(dir=self.workdir, suffix=".png")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(png)
            return load_digit(path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def __call__(self, png: bytes) -> dict[str, Any]:
        """The answer to ``POST /predict``; ValueError (ImageFileError) for a bad or blank image."""
        import numpy as np

        digit = self.digit(png)
        with self.lock:
            outputs = np.asarray(self.network.predict(digit), dtype=np.float64).ravel()
            maps = None
            if self.conv is not None:
                x = digit
                for layer in self.network.layers[: self.conv + 1]:
                    x = layer.forward_prop(x)
                maps = np.asarray(x, dtype=np.float64)
        best = int(np.argmax(outputs))
        answer: dict[str, Any] = {
            "digit": best,
            "confidence": float(outputs[best]),
            "confidences": [float(v) for v in outputs],
            "image": np.round(digit.reshape(28, 28), 4).tolist(),
        }
        if maps is not None:
            answer["maps"] = np.round(maps, 4).tolist()
        return answer


class _Handler(BaseHTTPRequestHandler):
    server: DigitServer
    timeout = SOCKET_TIMEOUT
    server_version = "fastcnn"
    sys_version = ""
    # Answer even a garbled request line with a status line (as HTTP/0.9, it would get none).
    default_request_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(f"{self.address_string()} {format % args}")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _fail(self, status: HTTPStatus, message: str, *, unread: bool = False) -> None:
        """A 4xx answer: one log line, a JSON ``{"error": message}`` body. ``unread``: the
        request's body was not read; the connection closes after a lingering drain."""
        self.log_message('"%s" %d %s', self.requestline, status.value, message)
        if unread:
            self.close_connection = True
        self._json(status.value, {"error": message})
        if unread:
            self._linger()

    def _linger(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            left = LINGER_BYTES
            while left > 0 and (wait := deadline - time.monotonic()) > 0:
                self.connection.settimeout(wait)
                chunk = self.connection.recv(min(65536, left))
                if not chunk:
                    break
                left -= len(chunk)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if isinstance(code, HTTPStatus):
            code = code.value
        if isinstance(code, int) and code >= 400:
            return  # _fail (or send_error) logged it with its reason
        self.log_message('"%s" %s', self.requestline, code)

    def _path(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0]

    def do_GET(self) -> None:
        page = self.server.page.get(self._path())
        if page is None:
            self._fail(HTTPStatus.NOT_FOUND, "no such page")
            return
        self._send(HTTPStatus.OK, *page)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if self._path() != "/predict":
            self._fail(HTTPStatus.NOT_FOUND, "no such page; POST a PNG to /predict", unread=True)
            return
        body = self._body()
        if body is None:
            return
        started = time.perf_counter()
        try:
            answer = self.server.analyse(body)
        except ValueError as exc:  # ImageFileError: not an image, damaged, blank, too large
            message = str(exc).split(": ", 1)[-1]  # without the temporary file's name
            self._fail(HTTPStatus.BAD_REQUEST, message)
            return
        except Exception as exc:  # a bug: the server stays up and says what happened, once
            self.log_message("internal error: %s: %s", type(exc).__name__, exc)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR.value, {"error": "internal error"})
            return
        answer["milliseconds"] = round((time.perf_counter() - started) * 1000, 2)
        self._json(HTTPStatus.OK.value, answer)

    def _body(self) -> bytes | None:
        """The request's body, or None after answering 400/411/413."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") is not None:
            self._fail(
                HTTPStatus.LENGTH_REQUIRED, "send the PNG with a Content-Length", unread=True
            )
            return None
        if length is None:
            self._fail(HTTPStatus.LENGTH_REQUIRED, "no Content-Length", unread=True)
            return None
        try:
            size = int(length)
            if size < 0:
                raise ValueError
        except ValueError:
            self._fail(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length[:40]!r}", unread=True)
            return None
        if size > MAX_BODY:
            self._fail(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"{size} bytes, more than the limit of {MAX_BODY}",
                unread=True,
            )
            return None
        body = self.rfile.read(size)
        if len(body) != size:
            self.close_connection = True
            self._fail(HTTPStatus.BAD_REQUEST, f"body ended after {len(body)} of {size} bytes")
            return None
        return body

    def _not_allowed(self) -> None:
        self._fail(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here", unread=True)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed


class DigitServer(ThreadingHTTPServer):
    """The page's HTTP server; ``serve_forever()`` to run, ``close()`` to stop and clean up.

    Parameters
    ----------
    network : Network
        Maps a (1, 28, 28) image to ten outputs.
    host : str, default "127.0.0.1"
    port : int, default 0 (any free port; see ``url``)
    log : callable or None
        Receives one line per request and per fault; default: print to stderr. None: silent.
    """

    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits instead of being refused

    def __init__(
        self,
        network: Network,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Callable[[str], None] | None = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        self.page = _page_files()
        self.analyse = Analyser(network)
        self._log = log
        try:
            self.analyse(_warm_up_png())  # compile or load the kernels before the first visitor
            super().__init__((host, port), _Handler)
        except BaseException:
            self.analyse.close()
            raise

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-answer, or anything else: one line, never a traceback.
        exc = sys.exc_info()[1]
        self.log(f"{client_address[0]} connection error: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.shutdown_if_running()
        self.server_close()
        self.analyse.close()

    def shutdown_if_running(self) -> None:
        if getattr(self, "_running", False):
            self.shutdown()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._running = True
        try:
            super().serve_forever(poll_interval)
        finally:
            self._running = False


def _warm_up_png() -> bytes:
    """A small PNG of a stroke, drawn with Pillow."""
    import io

    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise ImportError("The page reads images with Pillow: pip install 'fastcnn[cli]'") from None

    image = Image.new("L", (56, 56), 255)
    ImageDraw.Draw(image).line([(28, 8), (28, 48)], fill=0, width=6)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# the command: fastcnn serve MODEL [--port 8000] [--host 127.0.0.1]


def add_parser(commands: Any) -> None:
    """Add ``serve`` to the command line's subparsers."""
    from .cli import _model_options

    serve = commands.add_parser(
        "serve",
        help="a local web page to draw a digit and see the answer",
        description="Serve a page where you draw a digit (mouse, finger or pen) and see the "
        "model's answer, its ten outputs, the 28x28 image it saw (made as fastcnn predict makes "
        "it) and the first convolution's feature maps. Ctrl-C stops it.",
    )
    serve.add_argument("model", metavar="MODEL", help="model file written by fastcnn train")
    serve.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="TCP port (default: 8000; 0 picks a free one)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only); 0.0.0.0 opens the "
        "page to your network",
    )
    _model_options(serve)
    serve.set_defaults(run=run)


def _port(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from .cli import CommandError, _load_model

    network = _load_model(args)  # a 28x28 -> 10 model, or one line saying why not
    try:
        server = DigitServer(network, args.host, args.port)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}"
        ) from None
    try:
        print(f"serving {args.model} on {server.url} (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    finally:
        server.server_close()
        server.analyse.close()
    return 0
