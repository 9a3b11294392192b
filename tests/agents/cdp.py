"""Headless Chromium driven over the DevTools protocol on a pipe: no port, no library.

``--remote-debugging-pipe`` makes Chromium read commands on its fd 3 and answer on
fd 4, each message JSON ended by a NUL byte; :class:`Browser` opens one page and
evaluates, types and takes screenshots in it, so a test checks a page from the
inside (what ``--dump-dom`` cannot: typing into it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["Browser"]

# exec argv[3:] with the pipe ends argv[1] and argv[2] as its fds 3 and 4 (first moved
# above 9, so that neither is overwritten by the other's move)
_AT_3_AND_4 = """
import fcntl, os, sys
ends = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]
for target, fd in zip((3, 4), ends):
    os.dup2(fd, target)
    os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, chromium: str, flags: list[str]) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (Chromium's stderr, kept open)
        to_browser, self._to = os.pipe()
        self._from, from_browser = os.pipe()
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-c", _AT_3_AND_4, str(to_browser), str(from_browser)),
                *(chromium, *flags, "--remote-debugging-pipe", "about:blank"),
            ],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._id = 0
        self._session: str | None = None

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One command and its result (events in between are skipped)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self._session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    self._log.seek(0)
                    said = self._log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"chromium closed its pipe (during {method}): {said}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def open(self, page: Path, width: int, height: int) -> None:
        """Load ``page`` in a viewport of ``width`` x ``height`` pixels."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.navigate", url=page.as_uri())

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30) -> None:
        end = time.monotonic() + timeout_s
        while not self.eval(expression):
            if time.monotonic() > end:
                raise TimeoutError(expression)
            time.sleep(0.05)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` as a person would (input events)."""
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(
            base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        )

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):  # it may close its pipe first
            self.send("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to)
        os.close(self._from)
        self._log.close()
