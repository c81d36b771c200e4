"""A small HTTP client for a Cairn node's JSON API, turning every failure into a NodeError with a clear message."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wallet.errors import NodeError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds to connect and between bytes read
MAX_HEADERS_PER_CALL = 2000


class NodeClient:
    """``GET``/``POST`` against one node. GETs are retried on connection errors and 502/503/504."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=2,
            connect=2,
            read=1,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.url + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise NodeError(f"cannot reach the node at {self.url} ({_root_cause(exc)})", code="unreachable") from None
        except requests.Timeout:
            raise NodeError(f"the node at {self.url} did not answer within {self.timeout:g}s", code="timeout") from None
        except requests.RequestException as exc:
            raise NodeError(f"request to {url} failed: {exc}", code="unreachable") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                message = str(error.get("message") or error["code"])
                raise NodeError(f"the node refused: {error['code']}: {message}", code=error["code"])
            raise NodeError(f"the node answered HTTP {response.status_code} to {method} {path}", code="http-error")
        if not isinstance(body, dict):
            raise NodeError(f"the node's answer to {method} {path} is not a JSON object", code="bad-response")
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    # -- the API the wallet uses

    def status(self) -> dict[str, Any]:
        return self.get("/api/status")

    def address(self, address: str) -> dict[str, Any]:
        return self.get(f"/api/addresses/{quote(address)}")

    def address_history(self, address: str) -> dict[str, Any]:
        return self.get(f"/api/addresses/{quote(address)}/history")

    def submit_transaction(self, raw: bytes) -> str:
        return str(self.post("/api/transactions", {"hex": raw.hex()}).get("txid"))

    def transaction(self, txid: str) -> dict[str, Any]:
        return self.get(f"/api/transactions/{quote(txid)}")

    def headers(self, locator: list[str], limit: int = MAX_HEADERS_PER_CALL) -> list[bytes]:
        """Raw 80-byte headers following the first known locator hash; NodeError if the answer is malformed."""
        body = self.get("/api/headers", locator=",".join(locator), limit=limit)
        items = body.get("headers")
        if not isinstance(items, list) or len(items) > limit:
            raise NodeError(f"{self.url} answered /api/headers without a list of at most {limit}", code="bad-response")
        try:
            return [bytes.fromhex(item) for item in items]
        except (TypeError, ValueError):
            raise NodeError(f"{self.url} sent a header that is not hex", code="bad-response") from None

    def proof(self, txid: str) -> dict[str, Any]:
        return self.get(f"/api/proofs/{quote(txid)}")

    def raw_block(self, block_hash: str) -> bytes:
        body = self.get(f"/api/blocks/{quote(block_hash)}/raw")
        try:
            return bytes.fromhex(body["hex"])
        except (KeyError, TypeError, ValueError):
            raise NodeError(f"{self.url} sent block {block_hash} without valid hex", code="bad-response") from None

    def generate(self, blocks: int, address: str) -> dict[str, Any]:
        return self.post("/api/mining/generate", {"blocks": blocks, "address": address})


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 connection error, e.g. 'Connection refused'."""
    while exc.__context__ is not None or exc.__cause__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc)
    return text.split("] ", 1)[-1] if "] " in text else text
