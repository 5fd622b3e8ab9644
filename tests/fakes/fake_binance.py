"""Fake Binance spot + USDⓈ-M futures public API, enough for ccxt's binance / binanceusdm offline.

One server hosts every path (point all of ccxt's urls['api'] entries at `server.url`):
- GET /api/v3/exchangeInfo            spot markets (ccxt binance load_markets with types=['spot'])
- GET /api/v3/klines                  symbol, interval, startTime, endTime, limit (default 500, max 1000)
- GET /fapi/v1/exchangeInfo           perpetual markets (binanceusdm load_markets, types=['linear'])
- GET /fapi/v1/klines                 as spot (max 1500)
- GET /fapi/v1/fundingRate            symbol, startTime, endTime, limit (default 100, max 1000)
                                      -> [{symbol, fundingTime, fundingRate, markPrice}] oldest first
- GET /futures/data/openInterestHist  symbol, period, startTime, endTime, limit (default 30, max 500)
                                      -> [{symbol, sumOpenInterest, sumOpenInterestValue, timestamp}]
Errors like Binance: 400 {"code": -1121, "msg": "Invalid symbol."} (ccxt -> BadSymbol),
{"code": -1120, "msg": "Invalid interval."}, 404 for unknown paths. Rows in a window are served oldest
first, the first `limit` of them (startTime/endTime inclusive).

Data (keys are Binance ids "BTCUSDT" or unified "BTC/USDT" / "BTC/USDT:USDT"):
    FakeBinance(spot={"BTCUSDT": ohlcv}, perp={"BTCUSDT": ohlcv}, funding={"BTCUSDT": funding_frame},
                open_interest={"BTCUSDT": oi_frame}, extra_spot=["ETHUSDT"], extra_perp=[...])
funding_frame: ts, rate[, mark_price]; oi_frame: ts, amount (base), value (USD; NaN -> key omitted).
Perp markets listed = keys of perp | funding | open_interest | extra_perp. `extra_*` symbols are
listed in exchangeInfo but have no data (their data endpoints answer -1121).
"""

from __future__ import annotations

import pandas as pd

from tests.fakes import FakeHTTPServer, Fault, Request, Response, nan_to_none

__all__ = ["FakeBinance", "Fault", "binance_id"]

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "BTC", "ETH", "EUR")
INTERVAL_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
OI_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
SERVER_TIME = 1_700_000_000_000


def split_symbol(key: str) -> tuple[str, str, str]:
    """'BTC/USDT' | 'BTC/USDT:USDT' | 'BTCUSDT' -> (id, base, quote)."""
    if "/" in key:
        base, rest = key.split("/", 1)
        quote = rest.split(":", 1)[0]
        return base + quote, base, quote
    for q in QUOTES:
        if key.endswith(q) and len(key) > len(q):
            return key, key[: -len(q)], q
    raise ValueError(f"cannot split Binance symbol {key!r}; use 'BASE/QUOTE'")


def binance_id(key: str) -> str:
    return split_symbol(key)[0]


def _num_str(x: float) -> str | None:
    x = nan_to_none(float(x))
    return None if x is None else format(x, ".8f")


def _kline_rows(frame: pd.DataFrame) -> list[list]:
    rows = []
    for r in frame.sort_values("ts", kind="stable").itertuples(index=False):
        o, h, lo, c, v = (_num_str(getattr(r, k)) for k in ("open", "high", "low", "close", "volume"))
        close_price = nan_to_none(float(r.close))
        vol = nan_to_none(float(r.volume))
        quote_vol = None if close_price is None or vol is None else format(close_price * vol, ".8f")
        rows.append([int(r.ts), o, h, lo, c, v, int(r.ts) + 3_599_999, quote_vol, 100, "0", "0", "0"])
    return rows


def _filters(tick: str = "0.01000000", step: str = "0.00001000") -> list[dict]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": "0.00000000",
            "maxQty": "100.00000000",
            "stepSize": "0.00000000",
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": "5.00000000",
            "applyMinToMarket": True,
            "maxNotional": "9000000.00000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
    ]


class FakeBinance(FakeHTTPServer):
    def __init__(
        self,
        spot: dict[str, pd.DataFrame] | None = None,
        perp: dict[str, pd.DataFrame] | None = None,
        funding: dict[str, pd.DataFrame] | None = None,
        open_interest: dict[str, pd.DataFrame] | None = None,
        extra_spot: list[str] | None = None,
        extra_perp: list[str] | None = None,
    ) -> None:
        self.spot_markets = {binance_id(k): split_symbol(k) for k in [*(spot or {}), *(extra_spot or [])]}
        perp_keys = [*(perp or {}), *(funding or {}), *(open_interest or {}), *(extra_perp or [])]
        self.perp_markets = {binance_id(k): split_symbol(k) for k in perp_keys}
        self.spot_klines = {binance_id(k): _kline_rows(f) for k, f in (spot or {}).items()}
        self.perp_klines = {binance_id(k): _kline_rows(f) for k, f in (perp or {}).items()}
        self.funding: dict[str, list[dict]] = {}
        for k, f in (funding or {}).items():
            sid = binance_id(k)
            self.funding[sid] = [
                {
                    "symbol": sid,
                    "fundingTime": int(r.ts),
                    "fundingRate": _num_str(r.rate),
                    "markPrice": _num_str(getattr(r, "mark_price", 100.0)),
                }
                for r in f.sort_values("ts", kind="stable").itertuples(index=False)
            ]
        self.open_interest: dict[str, list[dict]] = {}
        for k, f in (open_interest or {}).items():
            sid = binance_id(k)
            recs = []
            for r in f.sort_values("ts", kind="stable").itertuples(index=False):
                rec = {"symbol": sid, "sumOpenInterest": _num_str(r.amount), "timestamp": int(r.ts)}
                value = _num_str(r.value)
                if value is not None:
                    rec["sumOpenInterestValue"] = value
                recs.append(rec)
            self.open_interest[sid] = recs
        super().__init__()

    # ------------------------------------------------------------ helpers
    def error_body(self, status: int, message: str) -> dict | str:
        """Bodies Binance really sends for injected errors (502 comes from the gateway as HTML)."""
        if status == 429:
            return {
                "code": -1003,
                "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
            }
        if status == 500:
            return {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
        if status == 503:
            return {
                "code": -1008,
                "msg": "Server is currently overloaded with other requests. Please try again.",
            }
        if status >= 500:
            return f"<html><head><title>{status}</title></head><body>{status} {message}</body></html>"
        return {"code": -1000, "msg": message}

    @staticmethod
    def _bad_symbol() -> Response:
        return Response(400, {"code": -1121, "msg": "Invalid symbol."})

    @staticmethod
    def _window(rows: list, key, req: Request, default_limit: int, max_limit: int) -> list:
        limit = min(int(req.query.get("limit", default_limit)), max_limit)
        start = int(req.query["startTime"]) if "startTime" in req.query else None
        end = int(req.query["endTime"]) if "endTime" in req.query else None
        out = [r for r in rows if (start is None or key(r) >= start) and (end is None or key(r) <= end)]
        if start is None and end is not None:
            return out[-limit:]
        if start is None and end is None:
            return out[-limit:]  # most recent, like Binance
        return out[:limit]

    # ------------------------------------------------------------ routes
    def route(self, req: Request) -> Response:
        p = req.path
        if p == "/api/v3/exchangeInfo":
            return Response(200, self._spot_info())
        if p == "/fapi/v1/exchangeInfo":
            return Response(200, self._perp_info())
        if p in ("/api/v3/klines", "/fapi/v1/klines"):
            table = self.spot_klines if p.startswith("/api/") else self.perp_klines
            sid = req.query.get("symbol", "")
            if sid not in table:
                return self._bad_symbol()
            if req.query.get("interval") != "1h":
                if req.query.get("interval") not in INTERVAL_MS:
                    return Response(400, {"code": -1120, "msg": "Invalid interval."})
                return Response(200, [])  # only hourly data is stored
            max_limit = 1000 if p.startswith("/api/") else 1500
            return Response(200, self._window(table[sid], lambda r: r[0], req, 500, max_limit))
        if p == "/fapi/v1/fundingRate":
            sid = req.query.get("symbol", "")
            if sid not in self.funding:
                return self._bad_symbol()
            return Response(200, self._window(self.funding[sid], lambda r: r["fundingTime"], req, 100, 1000))
        if p == "/futures/data/openInterestHist":
            sid = req.query.get("symbol", "")
            if sid not in self.open_interest:
                return self._bad_symbol()
            if req.query.get("period") not in OI_PERIODS:
                return Response(400, {"code": -1120, "msg": "Invalid period."})
            return Response(
                200, self._window(self.open_interest[sid], lambda r: r["timestamp"], req, 30, 500)
            )
        return Response(404, {"code": -1, "msg": f"fake binance: no route {p}"})

    def _spot_info(self) -> dict:
        symbols = []
        for sid, (_, base, quote) in self.spot_markets.items():
            symbols.append(
                {
                    "symbol": sid,
                    "status": "TRADING",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": _filters(),
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": SERVER_TIME,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _perp_info(self) -> dict:
        symbols = []
        for sid, (_, base, quote) in self.perp_markets.items():
            symbols.append(
                {
                    "symbol": sid,
                    "pair": sid,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": base,
                    "quoteAsset": quote,
                    "marginAsset": quote,
                    "pricePrecision": 2,
                    "quantityPrecision": 3,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": _filters("0.10", "0.001"),
                    "orderTypes": [
                        "LIMIT",
                        "MARKET",
                        "STOP",
                        "STOP_MARKET",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_MARKET",
                    ],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": SERVER_TIME,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}
            ],
            "exchangeFilters": [],
            "assets": [],
            "symbols": symbols,
        }
