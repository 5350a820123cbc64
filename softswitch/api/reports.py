"""Reports in the API: the JSON figures, CSV and XLSX downloads and SVG charts of a range of days, and the
/reports page that shows them (supervisors). A mixin of ``ApiServer``; figures from ``store.reports``."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..reports.build import switch_report
from ..reports.export import to_csv, to_xlsx
from .validate import ApiError
from .context import Ctx, reply

MAX_RANGE = 400 * 86400   # a report covers at most ~13 months


class ReportsApi:
    server: Any
    centre: Any

    def _reports_routes(self, app: web.Application) -> None:
        app.router.add_get("/reports", self._reports_page)

    async def _reports_page(self, request: web.Request) -> web.StreamResponse:
        return self._file("reports.html")  # type: ignore[attr-defined]

    async def _report(self, ctx: "Ctx") -> dict[str, Any]:
        q = ctx.query
        since, until = float(q["since"]), float(q["until"])
        if until <= since:
            raise ApiError(400, "until must be after since", "until")
        if until - since > MAX_RANGE:
            raise ApiError(400, "a report covers at most 400 days", "until")
        return await switch_report(self.centre, self.server.config, q.get("period", "day"), since, until)

    async def op_report(self, ctx: "Ctx") -> web.Response:
        return reply(await self._report(ctx))

    async def op_report_export(self, ctx: "Ctx") -> web.StreamResponse:
        report = await self._report(ctx)
        fmt = ctx.query.get("format", "csv")
        stem = f"report-{report['period']}-{int(report['since'])}"
        if fmt == "xlsx":
            body = to_xlsx(report)
            return web.Response(body=body, headers={
                "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "Content-Disposition": f'attachment; filename="{stem}.xlsx"'})
        section = ctx.query.get("section", "queues")
        return web.Response(text=to_csv(report, section), headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{stem}-{section}.csv"'})

    async def op_report_chart(self, ctx: "Ctx") -> web.StreamResponse:
        from ..reports.charts import chart   # pygal (~15 ms to import): loaded at the first chart, not at every start

        report = await self._report(ctx)
        try:
            svg = chart(ctx.path["chart"], report)
        except KeyError:
            raise ApiError(404, f"no chart {ctx.path['chart']}", "chart") from None
        return web.Response(body=svg, headers={"Content-Type": "image/svg+xml"})
