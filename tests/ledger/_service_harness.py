"""Helpers for the HTTP service tests: real uvicorn servers on 127.0.0.1.

``ThreadedServer`` runs an app in a thread of the test process (fast to
start, and the test can build the app with its own settings);
``ServeProcess`` runs ``govledger serve`` as a subprocess that a test can
kill. Both listen on a free loopback port and stop by themselves when the
test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ledger import Ledger, LedgerConfig

ORIGIN = "test.example/ledger"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_ledger(
    url: str, key_dir: Path, *, passphrase: bytes | None = None
) -> tuple[Ledger, str]:
    """Create a test ledger; return it and its verifier key.

    Without ``passphrase`` the key is encrypted with GOVLEDGER_KEY_PASSPHRASE.
    """
    config = LedgerConfig(key_dir=key_dir, passphrase=passphrase)
    ledger = Ledger.create(url, origin=ORIGIN, config=config)
    return ledger, ledger.signer().verifier_key()


def annotation(number: int, **changes: Any) -> dict[str, Any]:
    """Return a valid annotation record; ``changes`` replace its fields."""
    record: dict[str, Any] = {
        "kind": "annotation",
        "actor": f"user:annotator-{number % 7}",
        "occurred_at": "2026-01-05T10:00:00Z",
        "item": {"dataset": "reviews", "id": f"item-{number}"},
        "label": {"sentiment": "positive", "score": number % 5},
        "source": {"system": "test", "ref": f"ref-{number}"},
    }
    record.update(changes)
    return record


@contextmanager
def threaded_server(app: Any, *, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port or free_port(),
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def govledger_command() -> list[str]:
    """Return the command that runs the govledger CLI of this checkout."""
    script = Path(sys.executable).with_name("govledger")
    if script.exists():
        return [str(script)]
    return [sys.executable, str(ROOT / "cli.py")]


class ServeProcess:
    """``govledger serve`` in a subprocess on a fixed loopback port.

    Standard error (the service log) goes to ``log_path``, appended to
    across restarts.
    """

    def __init__(
        self,
        url: str,
        key_dir: Path,
        log_path: Path,
        *,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.key_dir = key_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> None:
        command = [
            *govledger_command(),
            "--db",
            self.url,
            "--key-dir",
            str(self.key_dir),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"govledger serve exited with {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"govledger serve did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the server process (by its pid) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM the server process; SIGKILL it if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}
