"""Open HTML files in headless Chromium and report console errors, image decoding and layout.

A tiny DevTools-protocol client (standard library only: a minimal RFC 6455 websocket) so the
report test needs no browser-automation package. :func:`check_pages` starts one headless
Chromium with a fresh profile, loads each file at a fixed viewport, waits for its load event,
decodes every ``<img>`` (``HTMLImageElement.decode()``) and returns, per page, the console
errors, uncaught exceptions, log errors, image sizes, the number of ``<script>`` elements,
layout facts (:data:`_LAYOUT`: the page's and every table cell's overflow, text cut by an
ellipsis or a clipping box, words broken across lines, images wider than their container) and, on request, a full-page
PNG screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


class _WebSocket:
    """Just enough of a websocket client for the DevTools protocol (text frames, masked)."""

    def __init__(self, url: str, timeout: float) -> None:
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header.append(0x80 | 126)
            header += struct.pack(">H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (0x9, 0xA):  # ping / pong: ignore
                continue
            message += data
            if b0 & 0x80:
                return message.decode("utf-8", errors="replace")

    def close(self) -> None:
        self.sock.close()


class _Session:
    def __init__(self, ws: _WebSocket, deadline: float) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.deadline = deadline

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = self._message()
            if msg.get("id") == ident:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str) -> dict[str, Any]:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            msg = self._message()
            if msg.get("method") == method:
                return msg
            self.events.append(msg)

    def _message(self) -> dict[str, Any]:
        if time.monotonic() > self.deadline:
            raise TimeoutError("Chromium did not answer in time")
        return json.loads(self.ws.recv())


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            out.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            out.append("log: " + str(params["entry"].get("text")))
    return out


_CHECK_IMAGES = """
Promise.all(Array.from(document.images).map(img =>
  img.decode().then(() => [true, img.naturalWidth, img.naturalHeight],
                    () => [false, img.naturalWidth, img.naturalHeight])))
  .then(images => JSON.stringify({images: images, scripts: document.scripts.length,
                                  title: document.title}))
"""


#: Layout facts of the loaded page, measured in the browser (CSS pixels).
_LAYOUT = r"""
(() => {
  const doc = document.documentElement;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                     (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '');
  const cut = [];
  const boxes = 'td, th, li, p, h1, h2, h3, code, span, a, figcaption, summary, table, div, section, details, dl';
  for (const el of document.querySelectorAll(boxes)) {
    const style = getComputedStyle(el);
    // a box that clips or scrolls its overflow hides part of its content from the reader
    const clips = style.overflowX !== 'visible' || style.textOverflow === 'ellipsis';
    if (el.scrollWidth > el.clientWidth + 1 && (clips || el.tagName === 'TD' || el.tagName === 'TH')) {
      cut.push({element: name(el), text: el.textContent.slice(0, 80), scrollWidth: el.scrollWidth,
                clientWidth: el.clientWidth});
    }
  }
  // a word broken across lines (a label cut mid-word): a word's range with several line boxes;
  // a line break after a hyphen ("context-|specific") is ordinary typography, so the parts of a
  // hyphenated word are words of their own
  const broken = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const re = /[^\s-]+-?/g;
    let m;
    while ((m = re.exec(node.data)) !== null) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (lines.size > 1) broken.push({element: name(node.parentElement), word: m[0].slice(0, 60)});
    }
  }
  const wide = [];
  for (const el of document.querySelectorAll('img, table, pre, figure')) {
    const box = el.getBoundingClientRect();
    const parent = el.parentElement.getBoundingClientRect();
    if (box.right > parent.right + 1 || box.left < parent.left - 1) {
      wide.push({element: name(el), right: box.right, parentRight: parent.right});
    }
  }
  const labels = Array.from(document.querySelectorAll('[title]')).length;
  return JSON.stringify({scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
                         scrollHeight: doc.scrollHeight, cut: cut, broken: broken, wide: wide,
                         titled: labels});
})()
"""


def check_pages(paths: list[Path], *, chromium: str, timeout: float = 60.0, width: int = 1280, height: int = 900,
                screenshots: Path | None = None) -> list[dict[str, Any]]:
    """Load every file in one headless Chromium at a *width* × *height* viewport; return per
    page ``errors``, ``images`` (``[decoded, naturalWidth, naturalHeight]`` per ``<img>``),
    ``scripts``, ``title`` and ``layout`` (:data:`_LAYOUT`). With *screenshots* (a folder),
    also write a full-page PNG of each page there, named ``<folder>-<file>.png``, and return its path
    as ``screenshot``."""
    profile = tempfile.mkdtemp(prefix="relu-probe-chromium-")
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if proc.poll() is not None:
                raise RuntimeError(f"Chromium exited with status {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as handle:
            targets = json.load(handle)
        page = next(t for t in targets if t.get("type") == "page")
        ws = _WebSocket(page["webSocketDebuggerUrl"], timeout=timeout)
        session = _Session(ws, deadline)
        for domain in ("Page", "Runtime", "Log"):
            session.call(f"{domain}.enable")
        session.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                     mobile=False)
        results = []
        for path in paths:
            session.events.clear()
            session.call("Page.navigate", url=Path(path).resolve().as_uri())
            session.wait_for("Page.loadEventFired")
            value = session.call("Runtime.evaluate", expression=_CHECK_IMAGES, awaitPromise=True,
                                 returnByValue=True)["result"]["value"]
            layout = session.call("Runtime.evaluate", expression=_LAYOUT, returnByValue=True)["result"]["value"]
            # let late console messages arrive
            session.call("Runtime.evaluate", expression="1")
            info = json.loads(value)
            info["layout"] = json.loads(layout)
            info["errors"] = _errors(session.events)
            if screenshots is not None:
                shot = session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                target = Path(screenshots) / f"{Path(path).resolve().parent.name}-{Path(path).stem}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(shot["data"]))
                info["screenshot"] = str(target)
            results.append(info)
        try:
            session.call("Browser.close")
        except (ConnectionError, OSError):
            pass
        ws.close()
        return results
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
