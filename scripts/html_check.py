#!/usr/bin/env python3
"""Checks an `oomguard explain --html` report in headless Chromium and with a strict HTML parser.

    html_check.py REPORT.html OUT_DIR [--expect-text TEXT]...

- strict parse: html5lib with strict=True (any parse error fails), when html5lib is installed
  (Debian python3-html5lib); else xmllint --html if present; else says it skipped;
- Chromium (headless, no network), driven over the DevTools protocol (stdlib-only websocket
  client below): the page loads with no console message of level error/warning, no exception,
  no <script> element, and `window.__pwned` unset (hostile names try to set it); every SVG
  has a rendered width and height > 0; the texts given with --expect-text are in the page's
  visible text (innerText), i.e. escaped names render as text;
- screenshots at a laptop size (1366x900) and a phone size (390x844), full page, saved as
  OUT_DIR/report-laptop.png and OUT_DIR/report-phone.png.

Exit status 0 when all checks pass, 1 on a failed check, 77 when Chromium is absent (skip).
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


def strict_parse(path):
    try:
        import html5lib  # noqa: F401
    except ImportError:
        html5lib = None
    if html5lib is not None:
        with open(path, "rb") as f:
            parser = html5lib.HTMLParser(strict=True)
            parser.parse(f)  # raises ParseError on any error
        return "html5lib strict: ok"
    if shutil.which("xmllint"):
        r = subprocess.run(["xmllint", "--html", "--noout", path], capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            raise SystemExit(f"xmllint --html: {r.stderr}")
        return "xmllint --html: ok"
    return "strict parse skipped: neither html5lib nor xmllint installed"


class WS:
    """A minimal websocket client (RFC 6455, text frames, client masking)."""

    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.split(":")
        self.s = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")
        self.s.sendall(req.encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("websocket handshake failed")
            resp += chunk
        if b" 101 " not in resp.split(b"\r\n")[0]:
            raise RuntimeError(resp.decode(errors="replace"))
        self.buf = resp.split(b"\r\n\r\n", 1)[1]

    def send(self, text):
        data = text.encode()
        head = bytearray([0x81])
        n = len(data)
        if n < 126:
            head.append(0x80 | n)
        elif n < 65536:
            head.append(0x80 | 126)
            head += struct.pack(">H", n)
        else:
            head.append(0x80 | 127)
            head += struct.pack(">Q", n)
        mask = os.urandom(4)
        head += mask
        self.s.sendall(bytes(head) + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            op = b0 & 0x0F
            if op in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return message.decode()
            # ping/pong/close frames are ignored (Chromium does not ping).


class Cdp:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise RuntimeError(f"timeout waiting for {method}")

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    report, out_dir = os.path.abspath(args[0]), args[1]
    expect = [args[i + 1] for i, a in enumerate(args) if a == "--expect-text"]
    os.makedirs(out_dir, exist_ok=True)
    print(strict_parse(report))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIP: chromium is not installed (Debian: apt-get install chromium)")
        return 77
    profile = tempfile.mkdtemp(prefix="oomguard-chromium-")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    failures = []
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t.get("type") == "page")
        cdp = Cdp(WS(page["webSocketDebuggerUrl"]))
        for domain in ("Page", "Runtime", "Log"):
            cdp.call(f"{domain}.enable")
        for name, w, h, mobile in (("laptop", 1366, 900, False), ("phone", 390, 844, True)):
            cdp.call("Emulation.setDeviceMetricsOverride", width=w, height=h,
                     deviceScaleFactor=1 if not mobile else 2, mobile=mobile)
            cdp.events.clear()
            cdp.call("Page.navigate", url="file://" + report)
            cdp.wait_event("Page.loadEventFired")
            time.sleep(0.3)
            for e in cdp.events:
                m = e.get("method")
                if m == "Runtime.exceptionThrown":
                    failures.append(f"{name}: exception: {e['params']}")
                if m == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "warning", "assert"):
                    failures.append(f"{name}: console {e['params']['type']}: {e['params']}")
                if m == "Log.entryAdded" and e["params"]["entry"].get("level") in ("error", "warning"):
                    failures.append(f"{name}: log: {e['params']['entry']}")
            scripts = cdp.eval("document.scripts.length")
            if scripts != 0:
                failures.append(f"{name}: {scripts} <script> elements in the page")
            if cdp.eval("typeof window.__pwned") != "undefined":
                failures.append(f"{name}: a script from the log ran (window.__pwned set)")
            # SVGs a layout hides on purpose (the task bars on a phone) are not counted.
            sizes = cdp.eval("JSON.stringify([...document.querySelectorAll('svg')]"
                             ".filter(s => s.checkVisibility()).map(s => "
                             "{const r = s.getBoundingClientRect(); return [r.width, r.height];}))")
            sizes = json.loads(sizes)
            if not sizes:
                failures.append(f"{name}: no SVG in the page")
            diagrams = cdp.eval("[...document.querySelectorAll('svg.breakdown')]"
                                ".filter(s => s.getBoundingClientRect().width > 100).length")
            if not diagrams:
                failures.append(f"{name}: no breakdown diagram drawn wider than 100px")
            bad = [s for s in sizes if s[0] <= 0 or s[1] <= 0]
            if bad:
                failures.append(f"{name}: {len(bad)} of {len(sizes)} SVGs have no size")
            overflow = cdp.eval("document.documentElement.scrollWidth - window.innerWidth")
            if overflow and overflow > 1:
                failures.append(f"{name}: page wider than the window by {overflow}px")
            # Content spilling out of a card (a long unbroken path) without widening the page.
            spill = cdp.eval("[...document.querySelectorAll('.card, .card *')].filter(e => "
                             "getComputedStyle(e).overflowX === 'visible' && "
                             "e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0 && "
                             "!(e.closest && e.closest('.scroll'))).length")
            if spill:
                failures.append(f"{name}: {spill} elements' content is wider than the element")
            text = cdp.eval("document.body.innerText")
            for t in expect:
                if t not in text:
                    failures.append(f"{name}: text not shown: {t!r}")
            height = cdp.eval("Math.ceil(document.documentElement.scrollHeight)")
            shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": w, "height": min(height, 12000), "scale": 1})
            path = os.path.join(out_dir, f"report-{name}.png")
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            # The first screenful as a person sees it on opening the file.
            top = cdp.call("Page.captureScreenshot", format="png")
            with open(os.path.join(out_dir, f"report-{name}-top.png"), "wb") as f:
                f.write(base64.b64decode(top["data"]))
            print(f"{name} {w}x{h}: {len(sizes)} SVGs sized, page height {height}px, screenshot {path}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
