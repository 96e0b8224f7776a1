"""Shared fixtures: keep this file small."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# On a CPU shared by several busy processes, torch's worker threads wait on each other and a
# decode step gets 10x slower than with one thread; use one thread when the machine is busy.
if "OMP_NUM_THREADS" not in os.environ and os.getloadavg()[0] > (os.cpu_count() or 1):
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The embedded default model (SmolLM2-135M-Instruct), converted once into the cache."""
    from agentpref.policies.models import resolve_model

    path = resolve_model("default")
    assert isinstance(path, Path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TinyServer:
    """`transformers serve` on the tiny model at a fixed localhost port; stop() and start()."""

    def __init__(self, model_dir: Path, log_path: Path) -> None:
        self.model = str(model_dir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-c", "from transformers.cli.transformers import main; main()",
               "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
               "--device", "cpu"]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        # Model loading takes a while on a busy CPU; wait for /health, not for a fixed time.
        while True:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"transformers serve exited ({self.proc.returncode}):\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5):
                    return
            except OSError:
                time.sleep(1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # uvicorn waits for requests still running
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def tiny_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TinyServer]:
    """A real OpenAI-compatible server (`transformers serve`) on the tiny model, for the session.

    Use OpenAIPolicy(model=server.model, base_url=server.base_url, server="transformers").
    """
    server = TinyServer(tiny_model_dir, tmp_path_factory.mktemp("serve") / "serve.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
