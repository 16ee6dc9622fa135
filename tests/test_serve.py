"""The draw-a-digit server (fastcnn/serve.py) on a real socket: its answers equal ``fastcnn
predict``'s on the same PNG, 100 concurrent requests are all answered correctly, and hostile
requests get a 4xx and one log line while the server stays up."""

import fnmatch
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fastcnn.images import load_digit
from fastcnn.serve import MAX_BODY, PAGE_FILES, DigitServer

from .pages import as_drawing, fastcnn_predict, mnist_test_digits, running_server, trained_network

pytest.importorskip("PIL")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def network(mnist_dir):
    return trained_network(mnist_dir)


@pytest.fixture(scope="module")
def model_path(network, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    network.save(path)
    return path


@pytest.fixture(scope="module")
def drawings(mnist_dir, tmp_path_factory):
    """Ten MNIST test digits as drawings (PNG files), and one raw 28x28 digit (white on black)."""
    from PIL import Image

    where = tmp_path_factory.mktemp("drawings")
    images, _ = mnist_test_digits(mnist_dir, 10)
    paths = []
    for i, image in enumerate(images):
        path = where / f"digit{i}.png"
        path.write_bytes(as_drawing(image))
        paths.append(path)
    raw = where / "raw.png"
    Image.fromarray(images[0]).save(raw)
    return [*paths, raw]


@pytest.fixture
def server(network):
    lines = []
    with running_server(network, log=lines.append) as server:
        server.lines = lines
        yield server


def post(url, body, kind="image/png"):
    request = urllib.request.Request(
        url + "predict", data=body, method="POST", headers={"Content-Type": kind}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(url, path):
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def raw_request(server, data, shut=True):
    """Send bytes on a fresh connection; the status code of the answer (None if none came)."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/"):
        return None
    return int(answer.split(b" ", 2)[1])


def test_page_is_served(server):
    # Catches a page file missing from the package or served with a wrong type, and a missing CSP.
    status, headers, body = get(server.url, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<canvas id="pad"' in body and b'id="clear"' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for path, kind in (("/page.js", "text/javascript"), ("/page.css", "text/css")):
        status, headers, body = get(server.url, path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body


def test_answers_equal_fastcnn_predict(server, model_path, drawings, network, capsys):
    # Catches preprocessing that differs from `fastcnn predict` (another resize, no centring,
    # no inversion) and a wrong digit, score, image or feature map in the answer.
    expected = fastcnn_predict(model_path, drawings, capsys)
    for path, want in zip(drawings, expected, strict=True):
        status, answer = post(server.url, path.read_bytes())
        assert status == 200, answer
        assert answer["digit"] == want["digit"], path.name
        assert answer["confidences"] == want["confidences"], path.name
        digit = load_digit(path)
        np.testing.assert_array_equal(answer["image"], np.round(digit[0], 4))
        conv = network.layers[0].forward_prop(digit)
        np.testing.assert_array_equal(answer["maps"], np.round(conv, 4))
        assert answer["milliseconds"] >= 0


def test_hundred_concurrent_requests(server, model_path, drawings, capsys):
    # Catches races on the network's layers (they keep their last input) and a listen queue
    # that refuses a burst of connections.
    expected = {
        p: r["digit"]
        for p, r in zip(drawings, fastcnn_predict(model_path, drawings, capsys), strict=True)
    }
    bodies = {p: p.read_bytes() for p in drawings}
    order = [drawings[i % len(drawings)] for i in range(100)]
    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda p: post(server.url, bodies[p]), order))
    assert [status for status, _ in answers] == [200] * 100
    assert [a["digit"] for _, a in answers] == [expected[p] for p in order]


def blank_png():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (280, 280), 255).save(buffer, "PNG")
    return buffer.getvalue()


HOSTILE = {
    # name: (raw request bytes, expected status)
    "over 1 MB (declared)": (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(),
        413,
    ),
    "not an image": (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\ngarbage", 400),
    "bad Content-Length": (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n", 400),
    "no Content-Length": (b"POST /predict HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    "chunked": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        411,
    ),
    "body shorter than declared": (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
        400,
    ),
    "malformed request line": (b"GARBAGE\r\n\r\n", 400),
    "unknown path": (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "traversal": (b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "encoded traversal": (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "package file": (b"GET /page/../serve.py HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "page folder": (b"GET /page/page.js HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "absolute path": (b"GET //etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "POST elsewhere": (b"POST /../predict HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404),
    "PUT": (b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_request_gets_4xx_and_one_log_line(server, drawings, name, capfd):
    # Catches a traceback, a 5xx, a file served from outside the page, and a server that dies.
    data, status = HOSTILE[name]
    assert raw_request(server, data) == status
    assert len(server.lines) == 1, server.lines  # one line, and the warm-up logs nothing
    assert str(status) in server.lines[0]
    assert "Traceback" not in capfd.readouterr().err
    assert get(server.url, "/")[0] == 200  # still up
    assert post(server.url, drawings[0].read_bytes())[0] == 200


def test_blank_drawing_is_400(server):
    status, answer = post(server.url, blank_png())
    assert status == 400 and answer["error"].startswith("blank image: no digit found")


def test_large_body_is_refused_unread(server):
    # A client that sends a real 2 MB body (not only its length) is answered 413 and cut off.
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as sock:
        head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {2 * MAX_BODY}\r\n\r\n"
        sock.sendall(head.encode())
        sent = 0
        try:
            while sent < 2 * MAX_BODY:
                sent += sock.send(b"\0" * 65536)
        except OSError:
            pass  # the server closed the connection without reading: that is the point
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.0 413") or answer.startswith(b"HTTP/1.1 413")
    assert get(server.url, "/")[0] == 200


def test_default_host_is_loopback(network):
    # Catches a server that opens itself to the network unless asked.
    server = DigitServer(network, log=None)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.close()
    from fastcnn.cli import _parser

    args = _parser().parse_args(["serve", "m.npz"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)


def test_page_files_are_package_data():
    # Catches a page file the wheel would not ship (CI also serves the page from the wheel).
    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "fastcnn.page" in config["tool"]["setuptools"]["packages"]
    patterns = config["tool"]["setuptools"]["package-data"]["fastcnn.page"]
    names = {name for name, _ in PAGE_FILES.values()}
    assert names == {p.name for p in (ROOT / "fastcnn" / "page").iterdir()}
    for name in names:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


@pytest.mark.slow
def test_cli_serve_runs_and_stops_on_ctrl_c(model_path, drawings):
    # Catches a broken command, a missing URL line, and Ctrl-C without its one line and 130.
    process = subprocess.Popen(
        [sys.executable, "-m", "fastcnn", "serve", str(model_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {model_path} on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        assert get(url, "/")[0] == 200
        assert post(url, drawings[0].read_bytes())[0] == 200
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert err.splitlines()[-1] == "fastcnn: interrupted"
    assert "Traceback" not in err


def test_cli_serve_busy_port_is_one_line(model_path, network, capsys):
    from fastcnn.cli import main

    with running_server(network) as server:
        port = server.server_address[1]
        assert main(["serve", str(model_path), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastcnn: error: cannot listen on 127.0.0.1 port {port}: ")
    assert err.count("\n") == 1


def test_lenet_model_is_served(drawings, tmp_path, capsys):
    # Catches a page that assumes the notebook's network: LeNet's first convolution is padded
    # (maps of 28x28, not 26x26), has per-filter biases and is followed by ReLU and max-pooling,
    # and its scores are a Softmax's probabilities.
    from fastcnn.models import lenet

    network = lenet(rng=0)
    network.layers[0].biases[...] = np.random.default_rng(0).standard_normal((6, 1, 1))
    path = tmp_path / "lenet.npz"
    network.save(path)
    expected = fastcnn_predict(path, drawings[:3], capsys)
    with running_server(network) as server:
        for png, want in zip(drawings[:3], expected, strict=True):
            status, answer = post(server.url, png.read_bytes())
            assert status == 200, answer
            assert answer["digit"] == want["digit"], png.name
            assert answer["confidences"] == want["confidences"], png.name
            assert sum(answer["confidences"]) == pytest.approx(1)
            maps = np.asarray(answer["maps"])
            assert maps.shape == (6, 28, 28)
            conv = network.layers[0].forward_prop(load_digit(png))
            np.testing.assert_array_equal(maps, np.round(conv, 4))
