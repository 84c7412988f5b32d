"""The transport half of the Partner Center client: how a request reaches Microsoft and how its
answer comes back (the protocol rules listed in `client.py`'s docstring live here), with no
knowledge of any resource. `client.py` builds the operations (customers, carts, subscriptions,
users…) on `PartnerCenterTransport`."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from collections.abc import Collection as AbstractCollection
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.i18n import _
from services.logging_context import current_correlation_id
from services.partner_center.auth import Audience, TokenKind, TokenProvider
from services.partner_center.errors import (
    BAD_RESPONSE_MESSAGE,
    THROTTLED_MESSAGE,
    UNAVAILABLE_MESSAGE,
    PartnerCenterAuthError,
    PartnerCenterError,
    PartnerCenterThrottled,
    PartnerCenterUnavailable,
    error_from_response,
)
from services.partner_center.models import (
    Collection,
    Link,
    ThrottledFault,
)
from services.remote_waits import remote_call

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "MS-RequestId"
CORRELATION_ID_HEADER = "MS-CorrelationId"
CONTINUATION_HEADER = "MS-ContinuationToken"
# A turn waiting on a call counts as working for this long (services/remote_waits.py): most answers
# come sooner and the turn goes straight on; a slower one stops holding a working turn's place.
WORKING_WHILE_WAITING_SECONDS = 0.25

_OK = frozenset({200, 201, 204})
_NOT_RETRYABLE_5XX = frozenset({501, 505})
_RETRY_AFTER_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*second", re.IGNORECASE)

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

AuthFailureHook = Callable[[PartnerCenterAuthError, TokenKind], Awaitable[None]]
"""Told when Microsoft refuses our credentials: the error (no secrets in it) and which sign-in
(`app` = client id and secret, `app_user` = the refresh token) the call used."""

CallObserver = Callable[[str, str, float], None]
"""Told after every HTTP attempt: the operation (`operation_of`), the outcome (the HTTP status, or
`timeout` / `connection_error`) and the seconds it took. Must be quick and must not raise."""

# The words of Partner Center's paths; any other segment (an id, a domain, a country) is `{id}`, so
# an operation name never carries data and the set of names stays small.
_PATH_WORDS = frozenset(
    {
        "addons", "address", "agreements", "auditrecords", "availabilities", "carts", "checkout",
        "countryvalidationrules", "customers", "domains", "licenses", "licenseupdates", "orders",
        "pricesheets", "products", "relationshiprequests", "sales", "skus", "subscribedskus",
        "subscriptions", "users", "validations",
    }
)  # fmt: skip
_VERSION = re.compile(r"^v\d+(\.\d+)?$")
_CUSTOMER_SCOPE = re.compile(r"/customers/([^/]+)/", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


@dataclass(frozen=True, slots=True)
class Accepted:
    """`202 Accepted`: Microsoft carries on in the background; poll `location`."""

    location: str | None
    retry_after: float | None


def new_request_id() -> str:
    return str(uuid.uuid4())


def parse_model(model: type[M]) -> Callable[[Response], M]:
    def parse(response: Response) -> M:
        return model.model_validate(response.json())

    return parse


def parse_collection(model: type[M]) -> Callable[[Response], Collection[M]]:
    collection_type: type[Collection[M]] = Collection[model]  # type: ignore[valid-type]

    def parse(response: Response) -> Collection[M]:
        return collection_type.model_validate(response.json())

    return parse


def status_of(response: Response) -> int:
    return response.status


def retry_after_of(headers: Mapping[str, str], body: Any) -> float | None:
    """Seconds to wait: the `Retry-After` header (seconds or HTTP date), else the 429 body's text."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if isinstance(body, Mapping):
        fault = ThrottledFault.model_validate(body)
        match = _RETRY_AFTER_IN_TEXT.search(fault.message or "")
        if match:
            return float(match.group(1))
    return None


def _safe_json(response: Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _path(url: str) -> str:
    """What we log of a URL: the path only (queries can carry domains and filters)."""
    return urlsplit(url).path


def operation_of(method: str, url: str) -> str:
    """A call's name without its data: `GET customers/{id}/users/{id}/licenses`."""
    words = []
    for segment in urlsplit(url).path.split("/"):
        if not segment or _VERSION.match(segment):
            continue
        word = segment.split("(", 1)[0].lower()
        words.append(word if word in _PATH_WORDS else "{id}")
    return f"{method.upper()} {'/'.join(words)}"


def _throttle_scope(url: str) -> str:
    """What Microsoft throttles a call under: the customer it names, else the partner."""
    match = _CUSTOMER_SCOPE.search(urlsplit(url).path + "/")
    if match is None or match.group(1).lower() in _PATH_WORDS:
        return ""
    return match.group(1).lower()


def _model_mismatch(url: str, invalid: ValidationError) -> None:
    # Only field locations are logged: the values may be personal data or secrets.
    locations = [".".join(str(part) for part in item["loc"]) for item in invalid.errors()[:5]]
    logger.error("Partner Center answer to %s did not match its model at %s", _path(url), locations)


@cache
def _list_of(model: type[M]) -> TypeAdapter[list[M]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


class LazyPage(Generic[M]):
    """One page of a collection whose envelope (links, continuation) is read at once and whose items
    are checked against their model only when first asked for: a caller following the pages can
    request the next one before spending time on this one's items."""

    def __init__(self, envelope: Collection[Any], model: type[M], url: str) -> None:
        self._envelope = envelope
        self._model = model
        self._url = url
        self._items: list[M] | None = None

    def __len__(self) -> int:
        return len(self._envelope.items)

    @property
    def next_link(self) -> Link | None:
        return self._envelope.next_link

    @property
    def continuation(self) -> str | None:
        return self._envelope.continuation

    @property
    def items(self) -> list[M]:
        if self._items is None:
            try:
                self._items = _list_of(self._model).validate_python(self._envelope.items)
            except ValidationError as invalid:
                _model_mismatch(self._url, invalid)
                raise PartnerCenterError(_(BAD_RESPONSE_MESSAGE), code="bad_response") from None
        return self._items


class PartnerCenterTransport:
    """The wire to Partner Center: one aiohttp session, tokens, `MS-RequestId`/`MS-CorrelationId`,
    429/5xx/timeout retries with back-off, holding back a throttled customer, `202` polling, paging,
    errors read into domain errors, every attempt observed. `PartnerCenterClient` (client.py) adds
    the operations on top.

    `sleep` is injectable so tests exercise back-off and polling without waiting; `rng` likewise
    makes jitter deterministic when a test needs it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        price_sheet_url: str,
        tokens: TokenProvider,
        max_attempts: int = 5,
        max_total_wait: float = 60.0,
        request_timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll_interval: float = 1.0,
        poll_timeout: float = 300.0,
        price_sheet_timeout: float = 300.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        locale: str = "en-US",
        application_name: str | None = None,
        rng: random.Random | None = None,
        on_auth_failure: AuthFailureHook | None = None,
        on_call: CallObserver | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required (PARTNER_CENTER_URL)")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api_root = f"{self._base_url}/v1"
        self._price_sheet_url = (price_sheet_url or base_url).rstrip("/")
        self._tokens = tokens
        self._max_attempts = max(1, max_attempts)
        self._max_total_wait = max_total_wait
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        # The price sheet is a file of tens of megabytes: it gets its own, longer timeout.
        self._price_sheet_timeout = aiohttp.ClientTimeout(total=max(request_timeout, price_sheet_timeout))
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._locale = locale
        self._application_name = application_name
        self._rng = rng or random.Random()
        # Public so the app can attach its operator alert once its services exist (`build_services`).
        self.on_auth_failure = on_auth_failure
        # Public so the app can count calls (its `/metrics`) once it has them.
        self.on_call = on_call
        # Per throttle scope (a customer id, or "" for the partner): how many calls are waiting out a
        # 429 now, and an event set while none is (other calls to the scope wait for it).
        self._throttled: dict[str, int] = {}
        self._unthrottled: dict[str, asyncio.Event] = {}

    # --- URLs ---------------------------------------------------------------------------------

    def _url(self, *segments: str) -> str:
        return self._api_root + "/" + "/".join(quote(segment, safe="") for segment in segments)

    def _resolve(self, uri: str) -> str:
        """A link or Location from Microsoft, made absolute. Links are relative to `/v1`.

        An absolute link to another host is refused: following it would hand our token to a stranger.
        """
        if uri.startswith(("https://", "http://")):
            allowed = {urlsplit(self._base_url)[:2], urlsplit(self._price_sheet_url)[:2]}
            if urlsplit(uri)[:2] not in allowed:
                logger.error("Partner Center sent a link to another host (%s); not followed", urlsplit(uri).netloc)
                raise PartnerCenterError(_(BAD_RESPONSE_MESSAGE), code="bad_response")
            return uri
        if uri == "/v1" or uri.startswith(("/v1/", "/v1?")):
            return self._base_url + uri
        return self._api_root + (uri if uri.startswith("/") else "/" + uri)

    # --- The one request loop -------------------------------------------------------------------

    def _backoff(self, retry: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0**retry)
        return ceiling / 2 + self._rng.random() * ceiling / 2

    async def _call(
        self,
        method: str,
        url: str,
        parse: Callable[[Response], R],
        *,
        kind: TokenKind = "app",
        audience: Audience = "partner_center",
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: AbstractCollection[int] = _OK,
        request_id: str | None = None,
        recover: Callable[[], Awaitable[R | None]] | None = None,
        accept: str = "application/json",
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> R:
        """Send one logical call with retries; `recover` looks for the result of an uncertain attempt."""
        request_id = request_id or new_request_id()
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        operation = operation_of(method, url)
        scope = _throttle_scope(url)
        waited = 0.0
        attempt = 0
        uncertain = False
        while True:
            attempt += 1
            if uncertain and recover is not None:
                recovered = await recover()
                if recovered is not None:
                    return recovered
                uncertain = False
            # Another call to this scope was throttled: it waits out its Retry-After; so does this one.
            gate = self._unthrottled.get(scope)
            if gate is not None and not gate.is_set():
                await gate.wait()
            correlation_id = new_request_id()
            try:
                token = await self._tokens.get_token(kind, audience)
            except PartnerCenterAuthError as refused:
                await self._auth_failed(refused, kind)
                raise
            request_headers = {
                "Authorization": f"Bearer {token}",
                "Accept": accept,
                REQUEST_ID_HEADER: request_id,
                CORRELATION_ID_HEADER: correlation_id,
                "X-Locale": self._locale,
            }
            if self._application_name:
                request_headers["MS-PartnerCenter-Application"] = self._application_name
            if data is not None:
                request_headers["Content-Type"] = "application/json"
            if headers:
                request_headers.update(headers)
            started = time.perf_counter()
            error: PartnerCenterError
            try:
                with remote_call(still_working_for=WORKING_WHILE_WAITING_SECONDS):
                    async with self._session.request(
                        method,
                        url,
                        params=params,
                        data=data,
                        headers=request_headers,
                        timeout=client_timeout or self._timeout,
                        allow_redirects=False,
                    ) as raw:
                        payload = await raw.read()
                response = Response(raw.status, raw.headers, payload, url)
            except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as failure:
                timed_out = isinstance(failure, TimeoutError)
                self._observe(operation, "timeout" if timed_out else "connection_error", started)
                outcome = "timed out" if timed_out else f"lost ({type(failure).__name__})"
                self._log(logging.WARNING, method, url, outcome, attempt, started, request_id, correlation_id)
                # Microsoft may have received it: keep the MS-RequestId so it can recognise the retry.
                uncertain = True
                delay = self._backoff(attempt - 1)
                error = PartnerCenterUnavailable(
                    _(UNAVAILABLE_MESSAGE), request_id=request_id, correlation_id=correlation_id
                )
            else:
                status = response.status
                self._observe(operation, str(status), started)
                # One line per call is for debugging (a catalog sync makes a hundred); refusals and
                # answers that lead to a retry are worth a person's attention.
                level = logging.DEBUG if status in ok or status < 400 else logging.WARNING
                self._log(level, method, url, str(status), attempt, started, request_id, correlation_id)
                if status in ok:
                    return self._parse(parse, response, request_id, correlation_id)
                fault = _safe_json(response)
                if status == 429:
                    # Throttled requests are not processed: same MS-RequestId on the retry.
                    retry_after = retry_after_of(response.headers, fault)
                    delay = retry_after if retry_after is not None else self._backoff(attempt - 1)
                    error = PartnerCenterThrottled(
                        _(THROTTLED_MESSAGE),
                        retry_after=delay,
                        http_status=status,
                        request_id=request_id,
                        correlation_id=correlation_id,
                    )
                elif status >= 500 and status not in _NOT_RETRYABLE_5XX:
                    description = fault.get("description") if isinstance(fault, Mapping) else None
                    error = PartnerCenterUnavailable(
                        _(UNAVAILABLE_MESSAGE),
                        http_status=status,
                        description=str(description) if description else None,
                        request_id=request_id,
                        correlation_id=correlation_id,
                    )
                    # It may have been done before the failure, so look before retrying a create;
                    # Microsoft answered, so the retry is a new request with a new id.
                    uncertain = True
                    request_id = new_request_id()
                    delay = self._backoff(attempt - 1)
                else:
                    refusal = error_from_response(status, fault, request_id=request_id, correlation_id=correlation_id)
                    if isinstance(refusal, PartnerCenterAuthError):
                        await self._auth_failed(refusal, kind)
                    raise refusal
            if attempt >= self._max_attempts or waited + delay > self._max_total_wait:
                if uncertain and recover is not None:
                    # Out of retries with the outcome unknown: one last look before reporting failure.
                    recovered = await recover()
                    if recovered is not None:
                        return recovered
                logger.warning(
                    "Partner Center %s %s: giving up (attempts: %d, %.1f s waited, %s)",
                    method,
                    _path(url),
                    attempt,
                    waited,
                    error.code,
                )
                raise error
            if isinstance(error, PartnerCenterThrottled):
                with self._holding_back(scope):
                    await self._sleep(delay)
            else:
                await self._sleep(delay)
            waited += delay

    @contextmanager
    def _holding_back(self, scope: str) -> Iterator[None]:
        """While a throttled call waits out its Retry-After, other calls to its scope wait too."""
        gate = self._unthrottled.setdefault(scope, asyncio.Event())
        self._throttled[scope] = self._throttled.get(scope, 0) + 1
        gate.clear()
        try:
            yield
        finally:
            self._throttled[scope] -= 1
            if not self._throttled[scope]:
                gate.set()

    def _observe(self, operation: str, outcome: str, started: float) -> None:
        if self.on_call is None:
            return
        try:
            self.on_call(operation, outcome, time.perf_counter() - started)
        except Exception:
            logger.exception("Could not count a Partner Center call")

    async def _auth_failed(self, error: PartnerCenterAuthError, kind: TokenKind) -> None:
        """Tell the operator hook; its own failure must not hide the user's error."""
        if self.on_auth_failure is None:
            return
        try:
            await self.on_auth_failure(error, kind)
        except Exception:
            logger.exception("Could not report refused Partner Center credentials")

    def _parse(self, parse: Callable[[Response], R], response: Response, request_id: str, correlation_id: str) -> R:
        try:
            return parse(response)
        except ValidationError as invalid:
            _model_mismatch(response.url, invalid)
        except ValueError:
            logger.error("Partner Center answer to %s was not valid JSON", _path(response.url))
        raise PartnerCenterError(
            _(BAD_RESPONSE_MESSAGE),
            code="bad_response",
            http_status=response.status,
            request_id=request_id,
            correlation_id=correlation_id,
        )

    def _log(
        self,
        level: int,
        method: str,
        url: str,
        outcome: str,
        attempt: int,
        started: float,
        request_id: str,
        correlation_id: str,
    ) -> None:
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "Partner Center %s %s -> %s (attempt %d, %.0f ms) ms-request-id=%s ms-correlation-id=%s correlation=%s",
                method,
                _path(url),
                outcome,
                attempt,
                (time.perf_counter() - started) * 1000,
                request_id,
                correlation_id,
                current_correlation_id(),
            )

    async def _pages(
        self,
        url: str,
        model: type[M],
        *,
        params: Mapping[str, str] | None = None,
        kind: TokenKind = "app",
    ) -> AsyncGenerator[Collection[M], None]:
        """Every page of a collection, following `links.next` with its continuation header."""
        parse = parse_collection(model)
        headers: dict[str, str] | None = None
        seen: set[tuple[str, str | None]] = set()
        while True:
            page = await self._call("GET", url, parse, kind=kind, params=params, headers=headers)
            yield page
            link = page.next_link
            if link is None or not page.items:
                return
            marker = (link.uri, page.continuation)
            if marker in seen:
                logger.warning("Partner Center repeated a page link for %s; stopping there", _path(url))
                return
            seen.add(marker)
            url = self._resolve(link.uri)
            params = None
            headers = {item.key: item.value for item in link.headers if item.value is not None}
            if page.continuation and not any(key.lower() == CONTINUATION_HEADER.lower() for key in headers):
                headers[CONTINUATION_HEADER] = page.continuation

    async def _all(
        self,
        url: str,
        model: type[M],
        *,
        params: Mapping[str, str] | None = None,
        kind: TokenKind = "app",
    ) -> list[M]:
        items: list[M] = []
        async for page in self._pages(url, model, params=params, kind=kind):
            items.extend(page.items)
        return items

    async def _poll(self, accepted: Accepted, parse: Callable[[Response], R], *, kind: TokenKind = "app") -> R:
        """Follow a `202 Accepted` to its end: GET `Location` until it stops answering 202."""
        if not accepted.location:
            raise PartnerCenterError(_(BAD_RESPONSE_MESSAGE), code="bad_response")
        url = self._resolve(accepted.location)

        def step(response: Response) -> R | Accepted:
            if response.status == 202:
                return Accepted(
                    response.headers.get("Location") or accepted.location, retry_after_of(response.headers, None)
                )
            return parse(response)

        waited = 0.0
        delay = accepted.retry_after if accepted.retry_after is not None else self._poll_interval
        while True:
            if waited + delay > self._poll_timeout:
                raise PartnerCenterError(
                    _("Microsoft is still processing this change. Check it again in a few minutes."),
                    code="still_processing",
                )
            await self._sleep(delay)
            waited += delay
            result = await self._call("GET", url, step, kind=kind, ok=(200, 202))
            if not isinstance(result, Accepted):
                return result
            if result.location:
                url = self._resolve(result.location)
            delay = result.retry_after if result.retry_after is not None else self._poll_interval
