"""The API's outbound operations (``/api/outbound/...``, ``/api/calls/{call}/preview``): campaigns and their
contact lists, callback tasks, result codes at wrap-up, the do-not-call list. A mixin of ``ApiServer``; the
work is ``softswitch.outbound.DiallerService``'s (docs/outbound.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from ..outbound import BadRequest
from .context import reply
from .validate import ApiError


class OutboundOps:
    server: Any
    control: Any

    def _dialler(self) -> Any:
        svc = getattr(self.server, "outbound", None)
        if svc is None or not svc.started:
            raise ApiError(503, "the dialler is not running")
        return svc

    @staticmethod
    def _bad(e: BadRequest) -> Exception:
        return ApiError(400, str(e), e.field)

    async def op_list_campaigns(self, ctx: Any) -> web.Response:
        return reply(self._dialler().campaigns())

    async def op_add_contacts(self, ctx: Any) -> web.Response:
        svc = self._dialler()
        name = ctx.path["campaign"]
        body = ctx.body
        if ("contacts" in body) == ("csv" in body):
            raise ApiError(400, "send either `contacts` (a list) or `csv` (text)", "contacts")
        try:
            added = (await svc.add_contacts(name, body["contacts"]) if "contacts" in body
                     else await svc.add_contacts_csv(name, body["csv"]))
        except KeyError:
            raise ApiError(404, f"no campaign {name}", "campaign") from None
        except BadRequest as e:
            raise self._bad(e) from None
        return reply({"added": added, "figures": svc.campaign(name)["figures"]})

    async def op_campaign_state(self, ctx: Any) -> web.Response:
        svc = self._dialler()
        name = ctx.path["campaign"]
        try:
            await svc.set_running(name, ctx.body["running"])
        except (KeyError, BadRequest):
            raise ApiError(404, f"no campaign {name}", "campaign") from None
        return reply(svc.campaign(name))

    async def op_get_contact(self, ctx: Any) -> web.Response:
        svc = self._dialler()
        cid = ctx.path["id"]
        try:
            out = svc.contact(cid)
            out["history"] = await svc.contact_history(cid)
        except KeyError:
            raise ApiError(404, f"no contact {cid}", "id") from None
        return reply(out)

    async def op_contact_result(self, ctx: Any) -> web.Response:
        svc = self._dialler()
        cid = ctx.path["id"]
        try:
            return reply(await svc.set_result(cid, ctx.body["result"], ctx.body.get("due")))
        except KeyError:
            raise ApiError(404, f"no contact {cid}", "id") from None
        except BadRequest as e:
            raise (ApiError(409, str(e), "result") if "in progress" in str(e) else self._bad(e)) from None

    async def op_contact_audio(self, ctx: Any) -> web.StreamResponse:
        svc = self._dialler()
        cid = ctx.path["id"]
        try:
            file = Path(svc.audio(cid))
        except KeyError:
            raise ApiError(404, f"contact {cid} has no message", "id") from None
        ivr = self.server.config.ivr
        base = Path(ivr.voicemail_dir).resolve() if ivr is not None else None
        try:
            real = file.resolve()
            if base is None:
                raise ValueError
            real.relative_to(base)
        except (ValueError, OSError):
            raise ApiError(404, f"contact {cid}: the message is outside the voicemail directory") from None
        if not real.is_file():
            raise ApiError(404, f"contact {cid}: file {file.name} is missing")
        return web.FileResponse(real, headers={"Content-Type": "audio/wav",
                                               "Content-Disposition": f'attachment; filename="{real.name}"'})

    async def op_list_callbacks(self, ctx: Any) -> web.Response:
        return reply(self._dialler().tasks(ctx.query.get("queue") or ""))

    async def op_request_callback(self, ctx: Any) -> web.Response:
        svc = self._dialler()
        b = ctx.body
        try:
            cid = await svc.request_callback(b["queue"], b["number"], name=b.get("name", ""), note=b.get("note", ""),
                                             due=b.get("due"))
        except BadRequest as e:
            raise self._bad(e) from None
        return reply(svc.contact(cid), 201)

    async def op_dnc(self, ctx: Any) -> web.Response:
        try:
            await self._dialler().set_dnc(ctx.body["number"], ctx.body.get("add", True))
        except BadRequest as e:
            raise self._bad(e) from None
        return reply({"ok": True})

    async def op_call_preview(self, ctx: Any) -> web.Response:
        call_id = ctx.path["call"]
        try:
            self.control.preview(call_id, ctx.body["action"] == "skip", ctx.user, ctx.supervisor)
        except KeyError:
            raise ApiError(404, f"no call {call_id} waiting for you to start it", "call") from None
        return reply({"ok": True})
