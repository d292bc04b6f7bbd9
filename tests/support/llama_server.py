"""llama-cpp-python's OpenAI-compatible server on the bundled SmolLM2 GGUF, on 127.0.0.1.

One helper for the tests (the ``llama_server`` fixture) and ``benchmarks/bench_judging.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llama_cpp_server(n_ctx: int = 4096, start_timeout_s: float = 120.0) -> Iterator[str]:
    """Start the server, yield its ``/v1`` URL once it answers, stop it afterwards."""
    from phase1b_kedro.llm.transformers_backend import bundled_gguf_path

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + start_timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("llama.cpp server exited at start") from None
                if time.time() > deadline:
                    raise RuntimeError(f"llama.cpp server did not start in {start_timeout_s:.0f} s") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
