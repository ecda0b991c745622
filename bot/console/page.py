"""The console's HTTP app: the page (static files, no build step), its JSON routes, the
``response_url`` endpoint, and the Slack stand-in's Web API on the same port.

``GET /console/state?user=U…&v=N`` answers what that person sees (channels, threads,
their ephemeral messages, their App Home and modal) once the workspace has changed past
version N, or after 20 s: a long poll, so updates show in place at once.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

from bot.console.people import BOT_USER, CHANNELS, GROUP_HANDLES, PEOPLE, person
from bot.console.relay import Relay, RelayError
from bot.console.standin import WebApi
from bot.console.workspace import Json, Workspace

POLL_SECONDS = 20.0
STATIC = ("index.html", "console.js", "console.css")
TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}

WORKSPACE = web.AppKey("console_workspace", Workspace)
RELAY = web.AppKey("console_relay", Relay)


def _static(name: str) -> str:
    return resources.files("bot.console").joinpath("static", name).read_text(encoding="utf-8")


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "index.html")
    if name not in STATIC:
        raise web.HTTPNotFound()
    kind = TYPES[name.rsplit(".", 1)[1]]
    return web.Response(
        text=_static(name),
        content_type=kind,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def seen_by(ws: Workspace, user: str) -> Json:
    """The workspace as ``user`` sees it."""
    channels = []
    for cid, name in CHANNELS.items():
        channels.append({"id": cid, "name": name, "messages": ws.messages.get(cid, [])})
    channels.append(
        {"id": user, "name": "PatchGate (app messages)", "messages": ws.messages.get(user, [])}
    )
    stack = ws.modals.get(user) or []
    modal = None
    if stack:
        top = stack[-1]
        modal = {"id": top.id, "view": top.view, "errors": top.errors}
    return {
        "version": ws.version,
        "user": user,
        "bot": BOT_USER,
        "people": [{"id": p.id, "name": p.name, "role": p.role} for p in PEOPLE],
        "groups": GROUP_HANDLES,
        "channels": channels,
        "ephemeral": [e for e in ws.ephemeral if e["user"] == user],
        "home": ws.homes.get(user),
        "home_id": f"VH{user}",
        "modal": modal,
        "caption": ws.caption,
    }


async def state(request: web.Request) -> web.Response:
    ws = request.app[WORKSPACE]
    user = request.query.get("user", "")
    if person(user) is None:
        return web.json_response({"error": "unknown person"}, status=400)
    try:
        version = int(request.query.get("v", "-1"))
    except ValueError:
        version = -1
    if version >= ws.version:
        await ws.wait_past(version, POLL_SECONDS)
    return web.json_response(seen_by(ws, user), headers={"Cache-Control": "no-store"})


async def _body(request: web.Request) -> Json:
    # JSON only: a form or text/plain post from another site (no CORS preflight) is refused
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="expected application/json")
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="expected a JSON object") from exc
    if not isinstance(body, dict) or person(str(body.get("user"))) is None:
        raise web.HTTPBadRequest(text="unknown person")
    return body


def _text(body: Json, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"{key}: expected a string")
    return value


async def act(request: web.Request) -> web.Response:
    """``POST /console/{what}``: command, click, submit, close, home."""
    relay = request.app[RELAY]
    body = await _body(request)
    user, what = body["user"], request.match_info["what"]
    try:
        if what == "command":
            channel = _text(body, "channel")
            if channel not in CHANNELS and channel != user:
                raise web.HTTPBadRequest(text="unknown channel")
            answer = await relay.command(user, channel, _text(body, "text").strip())
        elif what == "click" and body.get("view_id"):
            values = body.get("values") if isinstance(body.get("values"), dict) else {}
            answer = await relay.click_view(
                user,
                _text(body, "view_id"),
                str(body.get("block_id", "")),
                _text(body, "action_id"),
                values or {},
            )
        elif what == "click":
            answer = await relay.click_message(
                user,
                _text(body, "channel"),
                _text(body, "ts"),
                str(body.get("block_id", "")),
                _text(body, "action_id"),
            )
        elif what == "submit":
            values = body.get("values") if isinstance(body.get("values"), dict) else {}
            answer = await relay.submit(user, _text(body, "view_id"), values or {})
        elif what == "close":
            await relay.close_modal(user, _text(body, "view_id"))
            return web.json_response({"ok": True})
        elif what == "home":
            answer = await relay.open_home(user)
        else:
            raise web.HTTPNotFound()
    except RelayError as exc:
        return web.json_response({"ok": False, "error": str(exc)}, status=409)
    return web.json_response({"ok": answer.status == 200, "status": answer.status})


async def respond(request: web.Request) -> web.Response:
    """A ``response_url``: what PatchGate posts there is shown as Slack would."""
    try:
        reply: Any = await request.json()
    except ValueError:
        return web.Response(status=400, text="invalid_payload")
    if not isinstance(reply, dict):
        return web.Response(status=400, text="invalid_payload")
    if not await request.app[RELAY].respond(request.match_info["key"], reply):
        return web.Response(status=404, text="expired_url")
    return web.Response(text="ok")


def build_page_app(workspace: Workspace, relay: Relay) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)  # file uploads (report bundles)
    app[WORKSPACE] = workspace
    app[RELAY] = relay
    WebApi(workspace).routes(app)
    app.router.add_get("/", static_file)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/console/state", state)
    app.router.add_post("/console/respond/{key}", respond)
    app.router.add_post("/console/{what}", act)
    return app
