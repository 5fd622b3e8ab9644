"""Fake Coinbase Exchange public candles API.

GET /products/{product_id}/candles?granularity=<s>&start=<ISO8601>&end=<ISO8601>
-> [[time_s, low, high, open, close, volume], ...] newest first, at most 300 rows, start <= time <= end.
Errors as the real API: 400 {"message": ...} for a granularity outside {60,300,900,3600,21600,86400},
an unparseable start/end or a range of more than 300 candles; 404 {"message": "NotFound"} for an unknown
product or path. Data: one OHLCV frame (base.OHLCV_COLUMNS, ts in ms) per product; NaN is served as null.
The frame is served as given: rows with high < low, NaN fields, candles newer than "now" included.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from tests.fakes import FakeHTTPServer, Fault, Request, Response, nan_to_none

__all__ = ["FakeCoinbase", "Fault"]

GRANULARITIES = {60, 300, 900, 3600, 21600, 86400}
MAX_CANDLES = 300


def _parse_time(value: str) -> int:
    """ISO 8601 (or unix seconds) -> unix seconds."""
    try:
        return int(float(value))
    except ValueError:
        pass
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


class FakeCoinbase(FakeHTTPServer):
    def __init__(self, products: dict[str, pd.DataFrame] | None = None) -> None:
        self.products: dict[str, list[list]] = {}
        for pid, frame in (products or {}).items():
            self.set_product(pid, frame)
        super().__init__()

    def set_product(self, product_id: str, frame: pd.DataFrame) -> None:
        """(Re)load a product's candles; rows are kept as given (no de-dup, no validation)."""
        rows = []
        for r in frame.itertuples(index=False):
            rows.append(
                [
                    int(r.ts) // 1000,
                    nan_to_none(float(r.low)),
                    nan_to_none(float(r.high)),
                    nan_to_none(float(r.open)),
                    nan_to_none(float(r.close)),
                    nan_to_none(float(r.volume)),
                ]
            )
        rows.sort(key=lambda row: row[0], reverse=True)  # newest first, as served
        self.products[product_id] = rows

    def candle_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/candles")]

    def route(self, req: Request) -> Response:
        parts = req.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "products" or parts[2] != "candles":
            return Response(404, {"message": "NotFound"})
        product_id = parts[1]
        if product_id not in self.products:
            return Response(404, {"message": "NotFound"})
        try:
            granularity = int(req.query.get("granularity", "60"))
        except ValueError:
            return Response(400, {"message": "Unsupported granularity"})
        if granularity not in GRANULARITIES:
            return Response(400, {"message": "Unsupported granularity"})
        rows = self.products[product_id]
        if "start" in req.query and "end" in req.query:
            try:
                start = _parse_time(req.query["start"])
                end = _parse_time(req.query["end"])
            except ValueError:
                return Response(400, {"message": "Invalid start or end time"})
            if end < start:
                return Response(400, {"message": "start must be before end"})
            if (end - start) / granularity > MAX_CANDLES:
                return Response(
                    400,
                    {
                        "message": "granularity too small for the requested time range. "
                        "Count of aggregations requested exceeds 300"
                    },
                )
            rows = [row for row in rows if start <= row[0] <= end]
        return Response(200, rows[:MAX_CANDLES])
