"""Where serve's event loop stalls (``bench/serve_scale.py --stalls``): loaded into serve
through ``PYTHONPATH`` when ``PATCHGATE_BENCH_STALLS`` names a file. A watcher thread
samples the loop's thread every few milliseconds while one callback has run longer than
``STALL_MS``, and appends one JSON line per stall: when (Unix time), how long, the task
it was (its coroutines' await chain) and the sampled stacks (this repository's frames).
Not for production: it wraps ``asyncio.Handle._run``.
"""

from __future__ import annotations

import os

OUT = os.environ.get("PATCHGATE_BENCH_STALLS")
STALL_MS = 30.0
GC_MS = 10.0
SAMPLE_S = 0.004

if OUT:
    import asyncio
    import asyncio.events
    import collections
    import gc
    import json
    import sys
    import threading
    import time
    from pathlib import Path
    from types import FrameType
    from typing import Any

    ROOT = str(Path(__file__).resolve().parents[2]) + "/"
    _run = asyncio.events.Handle._run
    _now: dict[str, Any] = {"since": 0.0, "handle": None}

    def _timed(self: asyncio.events.Handle) -> None:
        _now["since"], _now["handle"] = time.perf_counter(), self
        try:
            _run(self)
        finally:
            _now["since"] = 0.0

    asyncio.events.Handle._run = _timed  # type: ignore[method-assign]

    def _ours(frame: FrameType) -> str | None:
        name = frame.f_code.co_filename
        if name.startswith(ROOT) and "/.venv/" not in name:
            return f"{name[len(ROOT) :]}:{frame.f_lineno} {frame.f_code.co_name}"
        return None

    def _stack(frame: FrameType | None) -> tuple[str, ...]:
        out: list[str] = []
        while frame is not None and len(out) < 12:
            ours = _ours(frame)
            if ours is not None:
                out.append(ours)
            elif not out:  # the innermost frame, wherever it is (json, the ORM)
                out.append(
                    f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"
                )
            frame = frame.f_back
        return tuple(out)

    def _task(handle: Any) -> str:
        task = getattr(getattr(handle, "_callback", None), "__self__", None)
        if not isinstance(task, asyncio.Task):
            return repr(getattr(handle, "_callback", None))[:120]
        chain: list[str] = []
        coro: Any = task.get_coro()
        while coro is not None and len(chain) < 12:
            frame = getattr(coro, "cr_frame", None)
            ours = _ours(frame) if frame is not None else None
            if ours is not None:
                chain.append(ours)
            coro = getattr(coro, "cr_await", None)
        return " > ".join(chain) or task.get_name()

    def _write(since: float, until: float, task: str, samples: collections.Counter[Any]) -> None:
        line = {
            "at": time.time() - (time.perf_counter() - since),
            "ms": round((until - since) * 1000),
            "task": task,
            "stacks": [[n, list(s)] for s, n in samples.most_common(3)],
        }
        with open(str(OUT), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def _watch() -> None:
        main = threading.main_thread().ident
        current, task, last = 0.0, "", 0.0
        samples: collections.Counter[Any] = collections.Counter()
        while True:
            time.sleep(SAMPLE_S)
            since, now = _now["since"], time.perf_counter()
            if current and since != current:
                _write(current, last if since else now, task, samples)
                current, samples = 0.0, collections.Counter()
            if since and (now - since) * 1000 > STALL_MS:
                if not current:
                    current, task = since, _task(_now["handle"])
                frame = sys._current_frames().get(main or 0)
                samples[_stack(frame)] += 1
                last = now

    _gc: dict[str, float] = {}

    def _collections(phase: str, info: dict[str, int]) -> None:
        """Garbage collections that stopped the process longer than GC_MS, as lines too."""
        if phase == "start":
            _gc["since"] = time.perf_counter()
            return
        ms = (time.perf_counter() - _gc.pop("since", time.perf_counter())) * 1000
        if ms > GC_MS:
            line = {
                "at": time.time(),
                "ms": round(ms),
                "gc": info.get("generation"),
                "collected": info.get("collected"),
            }
            with open(str(OUT), "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")

    gc.callbacks.append(_collections)
    threading.Thread(target=_watch, name="bench-stalls", daemon=True).start()
