"""The floor for ``bench/slack_ack.py``: a minimal aiohttp handler on the same machine.

    python bench/slack_ack_floor.py PORT SECRET

Reads the body, checks the v0 signature and the timestamp window with ``hmac`` and
answers 200 with a small JSON body; no Bolt, no database. Its latency is what the
machine, the client and aiohttp cost by themselves, measured in the same run as
PatchGate so the two can be compared under the same load.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import time

from aiohttp import web


def make_app(secret: bytes) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return web.json_response({"error": "stale"}, status=401)
        mac = hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
        if not hmac.compare_digest("v0=" + mac.hexdigest(), signature):
            return web.json_response({"error": "bad signature"}, status=401)
        return web.json_response({"text": "ok", "response_type": "ephemeral"})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", lambda _: web.json_response({"leader": True}))
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(sys.argv[2].encode()),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
    )
