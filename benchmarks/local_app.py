"""Start app.py on a free localhost port and wait until it answers: for the tests and the load test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def start_app(log: Path, timeout: float = 180, **env: str) -> tuple[subprocess.Popen, str]:
    """``python app.py`` as a Space runs it, offline, with ``env`` on top; its output goes to ``log``.

    Returns the server process and its URL. The bundled model is served unless REALFAKE_MODEL is given.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "REALFAKE_MODEL": "",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        **env,
    }
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "app.py"], cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"app.py exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s")
