"""The one HTTP client to Microsoft Partner Center (or the built-in sandbox, which speaks the same wire).

Protocol rules it enforces so callers need not think about them:

- `MS-RequestId` is Microsoft's idempotency key for one logical call. It is kept when a request
  may not have reached Microsoft or was refused unprocessed (timeout, dropped connection, 429) and
  renewed after any other answer, exactly as Microsoft's guidance says.
- `MS-CorrelationId` is new for every HTTP request and logged with our own correlation id, so a
  support ticket can name the exact request. Authorization headers and bodies are never logged.
- 429 waits `Retry-After`; 5xx, timeouts and dropped connections back off exponentially with
  jitter; all within `max_attempts` and `max_total_wait`, after which a domain error is raised.
  While a call waits out a 429, every other call of this client to the same customer (else the
  partner) waits with it before sending, so concurrent callers do not keep knocking while throttled.
- Creates are never repeated blindly: before retrying a customer creation or a checkout whose
  outcome is unknown (5xx or lost answer), the client looks for the result (the customer by its
  domain; the cart's status and the subscriptions it produced), so a retried checkout cannot buy twice.
- `202 Accepted` + `Location` is polled to completion; collections are followed page by page.
- Error bodies `{code, description, data, source}` become the domain errors of `errors.py`.
- Refused credentials (a 401/403, or Microsoft's sign-in refusing our app or refresh token) are also
  handed to `on_auth_failure`, so the app can alert the operator; the caller still gets the error.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import random
import re
import time
import uuid
import zipfile
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from collections.abc import Collection as AbstractCollection
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
    ETAG_MESSAGE,
    THROTTLED_MESSAGE,
    UNAVAILABLE_MESSAGE,
    PartnerCenterAuthError,
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInvalidInput,
    PartnerCenterNotFound,
    PartnerCenterThrottled,
    PartnerCenterUnavailable,
    error_from_response,
)
from services.partner_center.models import (
    Address,
    AddressValidationResult,
    Agreement,
    AgreementMetaData,
    AuditRecord,
    Availability,
    Cart,
    CartCheckoutResult,
    CartLineItem,
    CartStatus,
    Collection,
    Contact,
    CountryValidationRules,
    Customer,
    CustomerUser,
    License,
    LicenseUpdate,
    Link,
    Order,
    PriceSheetRow,
    Product,
    RelationshipRequest,
    Sku,
    SubscribedSku,
    Subscription,
    ThrottledFault,
)

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "MS-RequestId"
CORRELATION_ID_HEADER = "MS-CorrelationId"
CONTINUATION_HEADER = "MS-ContinuationToken"
MICROSOFT_CUSTOMER_AGREEMENT = "MicrosoftCustomerAgreement"
DEFAULT_PRICE_SHEET_VIEW = "updatedlicensebased"

_OK = frozenset({200, 201, 204})
_NOT_RETRYABLE_5XX = frozenset({501, 505})
_RETRY_AFTER_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*second", re.IGNORECASE)
# Clock difference allowed between our cart timestamps and Microsoft's subscription timestamps.
_CLOCK_SKEW = timedelta(minutes=10)

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
class _Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


@dataclass(frozen=True, slots=True)
class _Accepted:
    """`202 Accepted`: Microsoft carries on in the background; poll `location`."""

    location: str | None
    retry_after: float | None


def _new_id() -> str:
    return str(uuid.uuid4())


def _model(model: type[M]) -> Callable[[_Response], M]:
    def parse(response: _Response) -> M:
        return model.model_validate(response.json())

    return parse


def _collection(model: type[M]) -> Callable[[_Response], Collection[M]]:
    collection_type: type[Collection[M]] = Collection[model]  # type: ignore[valid-type]

    def parse(response: _Response) -> Collection[M]:
        return collection_type.model_validate(response.json())

    return parse


def _status(response: _Response) -> int:
    return response.status


def _retry_after(headers: Mapping[str, str], body: Any) -> float | None:
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


def _safe_json(response: _Response) -> Any:
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


def _contains(expected: Any, actual: Any) -> bool:
    """True if every value in `expected` is also in `actual` (strings compared case-insensitively)."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return False
        lowered = {str(key).lower(): value for key, value in actual.items()}
        return all(_contains(value, lowered.get(str(key).lower())) for key, value in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_contains, expected, actual))
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.lower() == actual.lower()
    return bool(expected == actual)


_CHANGEABLE = (
    "quantity",
    "status",
    "autoRenewEnabled",
    "friendlyName",
    "billingCycle",
    "scheduledNextTermInstructions",
)


def _changes_applied(desired: Subscription, current: Subscription) -> bool:
    """Whether `current` already shows what a PATCH of `desired` asked for."""
    wanted = desired.to_wire()
    have = current.to_wire()
    return all(_contains(wanted.get(key), have.get(key)) for key in _CHANGEABLE if key in wanted)


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


def _parse_price_sheet(body: bytes) -> tuple[list[PriceSheetRow], int]:
    """Rows of Microsoft's price-sheet CSV (optionally zipped); also how many rows were unreadable."""
    if body[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
            body = archive.read(names[0]) if names else b""
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
    rows: list[PriceSheetRow] = []
    skipped = 0
    for record in reader:
        try:
            rows.append(PriceSheetRow.model_validate({key: value for key, value in record.items() if key}))
        except ValidationError:
            skipped += 1
    return rows, skipped


class PartnerCenterClient:
    """Typed async operations on Partner Center. One instance per app, sharing one aiohttp session.

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
        parse: Callable[[_Response], R],
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
        request_id = request_id or _new_id()
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
            correlation_id = _new_id()
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
                    response = _Response(raw.status, raw.headers, payload, url)
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
                    retry_after = _retry_after(response.headers, fault)
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
                    request_id = _new_id()
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

    def _parse(self, parse: Callable[[_Response], R], response: _Response, request_id: str, correlation_id: str) -> R:
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
        parse = _collection(model)
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

    async def _poll(self, accepted: _Accepted, parse: Callable[[_Response], R], *, kind: TokenKind = "app") -> R:
        """Follow a `202 Accepted` to its end: GET `Location` until it stops answering 202."""
        if not accepted.location:
            raise PartnerCenterError(_(BAD_RESPONSE_MESSAGE), code="bad_response")
        url = self._resolve(accepted.location)

        def step(response: _Response) -> R | _Accepted:
            if response.status == 202:
                return _Accepted(
                    response.headers.get("Location") or accepted.location, _retry_after(response.headers, None)
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
            if not isinstance(result, _Accepted):
                return result
            if result.location:
                url = self._resolve(result.location)
            delay = result.retry_after if result.retry_after is not None else self._poll_interval

    # --- Customers ------------------------------------------------------------------------------

    async def domain_is_taken(self, domain: str) -> bool:
        """Whether `<name>.onmicrosoft.com` already belongs to some tenant (HEAD: 200 taken, 404 free)."""
        status = await self._call("HEAD", self._url("domains", domain), _status, ok=(200, 404))
        return status == 200

    async def country_rules(self, country: str) -> CountryValidationRules:
        """Address and registration rules of a country (ISO 3166 alpha-2)."""
        return await self._call("GET", self._url("countryvalidationrules", country), _model(CountryValidationRules))

    async def validate_address(self, address: Address) -> AddressValidationResult:
        """Microsoft's verdict on an address, with suggested corrections."""
        return await self._call(
            "POST", self._url("validations", "address"), _model(AddressValidationResult), body=address.to_wire()
        )

    async def create_customer(self, customer: Customer, *, request_id: str | None = None) -> Customer:
        """Create a customer tenant. The answer carries the first admin's credentials (`user_credentials`).

        Pass the durable job's key as `request_id` so a restarted job is recognised by Microsoft.
        If the answer was lost but the tenant exists, the tenant is returned as found by its domain -
        then `user_credentials` is None (Microsoft shows the password only once).
        """
        domain = customer.domain
        if not domain:
            raise PartnerCenterInvalidInput(_("The new customer needs a domain."), field="domain")

        async def recover() -> Customer | None:
            found = await self.find_customer_by_domain(domain)
            if found is not None:
                logger.warning("Customer creation had already gone through at Microsoft (tenant %s)", found.id)
            return found

        return await self._call(
            "POST",
            self._url("customers"),
            _model(Customer),
            body=customer.to_wire(),
            request_id=request_id,
            recover=recover,
        )

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._call("GET", self._url("customers", customer_id), _model(Customer))

    async def find_customer_by_domain(self, domain: str) -> Customer | None:
        """The reseller's customer whose primary domain is exactly `domain`, if any."""
        query = json.dumps({"Field": "Domain", "Value": domain, "Operator": "starts_with"}, separators=(",", ":"))
        wanted = domain.lower()
        pages = self._pages(self._url("customers"), Customer, params={"size": "100", "filter": query})
        async with aclosing(pages):
            async for page in pages:
                for candidate in page.items:
                    if (candidate.domain or "").lower() == wanted:
                        return candidate
        return None

    async def relationship_request_url(self) -> str:
        """The link a customer's admin opens to accept the reseller relationship."""
        request = await self._call("GET", self._url("customers", "relationshiprequests"), _model(RelationshipRequest))
        return request.url

    async def mca_template_id(self) -> str:
        """The current Microsoft Customer Agreement template (the lowest version rank is in force)."""
        metadata = await self._all(
            self._url("agreements"),
            AgreementMetaData,
            params={"agreementType": MICROSOFT_CUSTOMER_AGREEMENT},
            kind="app_user",
        )
        candidates = [
            (item.version_rank if item.version_rank is not None else 1 << 30, item.template_id)
            for item in metadata
            if item.template_id
            and (item.agreement_type is None or item.agreement_type.lower() == MICROSOFT_CUSTOMER_AGREEMENT.lower())
        ]
        if not candidates:
            raise PartnerCenterNotFound(_("Microsoft did not list the Microsoft Customer Agreement."))
        return min(candidates)[1]

    async def accept_agreement(
        self,
        customer_id: str,
        contact: Contact,
        *,
        template_id: str | None = None,
        date_agreed: datetime | None = None,
    ) -> Agreement:
        """Record the partner's attestation that the customer accepted the MCA (needed before buying)."""
        agreement = Agreement(
            primary_contact=contact,
            date_agreed=date_agreed or datetime.now(UTC),
            template_id=template_id or await self.mca_template_id(),
            type=MICROSOFT_CUSTOMER_AGREEMENT,
        )
        return await self._call(
            "POST",
            self._url("customers", customer_id, "agreements"),
            _model(Agreement),
            body=agreement.to_wire(),
            kind="app_user",
        )

    async def agreements(self, customer_id: str, *, agreement_type: str | None = None) -> list[Agreement]:
        """Attestations already recorded for a customer."""
        params = {"agreementType": agreement_type} if agreement_type else None
        return await self._all(
            self._url("customers", customer_id, "agreements"), Agreement, params=params, kind="app_user"
        )

    # --- Catalog --------------------------------------------------------------------------------

    async def products(
        self, country: str, *, target_view: str = "OnlineServices", target_segment: str = "commercial"
    ) -> list[Product]:
        params = {"country": country, "targetView": target_view, "targetSegment": target_segment}
        return await self._all(self._url("products"), Product, params=params)

    async def product(self, product_id: str, country: str) -> Product:
        return await self._call("GET", self._url("products", product_id), _model(Product), params={"country": country})

    async def skus(self, product_id: str, country: str, *, target_segment: str = "commercial") -> list[Sku]:
        params = {"country": country, "targetSegment": target_segment}
        return await self._all(self._url("products", product_id, "skus"), Sku, params=params)

    async def availabilities(
        self, product_id: str, sku_id: str, country: str, *, target_segment: str = "commercial"
    ) -> list[Availability]:
        """What can be bought now. Availability ids rotate: fetch them right before building a cart."""
        params = {"country": country, "targetSegment": target_segment}
        return await self._all(
            self._url("products", product_id, "skus", sku_id, "availabilities"), Availability, params=params
        )

    async def price_sheet(
        self,
        market: str,
        *,
        view: str = DEFAULT_PRICE_SHEET_VIEW,
        timeline: str | None = None,
        month: str | None = None,
    ) -> list[PriceSheetRow]:
        """Microsoft's price sheet for a market (the reseller's cost), from the partner API host."""
        url = (
            f"{self._price_sheet_url}/v1.0/sales/pricesheets"
            f"(Market='{quote(market, safe='')}',PricesheetView='{quote(view, safe='')}')/$value"
        )
        params = {key: value for key, value in (("timeline", timeline), ("month", month)) if value}
        body = await self._call(
            "GET",
            url,
            lambda response: response.body,
            kind="app_user",
            audience="partner_api",
            params=params or None,
            accept="text/csv, application/octet-stream, application/json",
            client_timeout=self._price_sheet_timeout,
        )
        rows, skipped = await asyncio.to_thread(_parse_price_sheet, body)
        if skipped:
            logger.warning("Price sheet for %s: rows that could not be read were skipped: %d", market, skipped)
        return rows

    # --- Carts and orders -----------------------------------------------------------------------

    async def create_cart(self, customer_id: str, line_items: Sequence[CartLineItem]) -> Cart:
        """A cart (it expires after a while). Add-ons carry `provisioningContext.parentSubscriptionId`."""
        numbered = [item.model_copy(update={"id": index}) for index, item in enumerate(line_items)]
        return await self._call(
            "POST",
            self._url("customers", customer_id, "carts"),
            _model(Cart),
            body=Cart(line_items=numbered).to_wire(),
        )

    async def get_cart(self, customer_id: str, cart_id: str) -> Cart:
        return await self._call("GET", self._url("customers", customer_id, "carts", cart_id), _model(Cart))

    async def checkout(self, customer_id: str, cart_id: str, *, request_id: str | None = None) -> CartCheckoutResult:
        """Buy a cart. Never buys twice: an uncertain attempt, or Microsoft saying the cart was
        already submitted, leads to the orders the earlier attempt created."""

        async def recover() -> CartCheckoutResult | None:
            return await self._checked_out(customer_id, cart_id)

        try:
            return await self._call(
                "POST",
                self._url("customers", customer_id, "carts", cart_id, "checkout"),
                _model(CartCheckoutResult),
                request_id=request_id,
                recover=recover,
            )
        except PartnerCenterConflict as conflict:
            if conflict.code != "800065":
                raise
            result = await self._checked_out(customer_id, cart_id)
            if result is None:
                raise
            return result

    async def _checked_out(self, customer_id: str, cart_id: str) -> CartCheckoutResult | None:
        """None if the cart is still open (safe to check out); the orders it produced if it was bought."""
        cart = await self.get_cart(customer_id, cart_id)
        if cart.status == CartStatus.ACTIVE:
            return None
        if cart.status != CartStatus.ORDERED:
            raise PartnerCenterError(
                _("This order can no longer be placed (the cart expired). Please start the order again."),
                code="cart_not_active",
            )
        orders = await self._orders_of(customer_id, cart)
        logger.warning("Checkout of cart %s had already gone through at Microsoft (orders: %d)", cart_id, len(orders))
        return CartCheckoutResult(orders=orders)

    async def _orders_of(self, customer_id: str, cart: Cart) -> list[Order]:
        """The orders a checked-out cart produced, found through the subscriptions it created.

        Microsoft's cart does not name its orders, so this matches subscriptions of the cart's
        products created since the cart was, and reads their orders. Subscriptions can appear a
        little after checkout, so this looks a few times before giving up (without buying again).
        """
        wanted: set[str] = set()
        for line in cart.line_items:
            for item in [line, *(line.addon_items or [])]:
                wanted.add(":".join(item.catalog_item_id.split(":")[:2]).upper())
        since = cart.creation_timestamp or cart.last_modified_timestamp
        for look in range(5):
            if look:
                await self._sleep(self._poll_interval)
            order_ids: list[str] = []
            for subscription in await self.subscriptions(customer_id):
                created = subscription.creation_date
                if (
                    subscription.order_id
                    and subscription.sku_key in wanted
                    and (since is None or created is None or created >= since - _CLOCK_SKEW)
                    and subscription.order_id not in order_ids
                ):
                    order_ids.append(subscription.order_id)
            if order_ids:
                return [await self.get_order(customer_id, order_id) for order_id in order_ids]
        raise PartnerCenterError(
            "The order was placed, but Microsoft has not listed its subscriptions yet. "
            "Check the subscriptions in a few minutes before ordering again.",
            code="checkout_unconfirmed",
        )

    async def get_order(self, customer_id: str, order_id: str) -> Order:
        return await self._call("GET", self._url("customers", customer_id, "orders", order_id), _model(Order))

    # --- Subscriptions ------------------------------------------------------------------------------

    async def subscriptions(self, customer_id: str) -> list[Subscription]:
        return await self._all(self._url("customers", customer_id, "subscriptions"), Subscription)

    async def subscription(self, customer_id: str, subscription_id: str) -> Subscription:
        return await self._call(
            "GET", self._url("customers", customer_id, "subscriptions", subscription_id), _model(Subscription)
        )

    async def update_subscription(
        self, customer_id: str, subscription: Subscription, *, withdraw_scheduled_changes: bool = False
    ) -> Subscription:
        """PATCH the whole subscription (quantity, status, autoRenewEnabled, scheduledNextTermInstructions).

        Sends `If-Match` with its e-tag, so a change made elsewhere meanwhile is refused rather than
        overwritten. Typical use: `update_subscription(c, sub.model_copy(update={"quantity": 12}))`.
        `withdraw_scheduled_changes` sends `scheduledNextTermInstructions: null` (requests carry no nulls
        otherwise): the changes scheduled for the renewal are withdrawn.
        """
        url = self._url("customers", customer_id, "subscriptions", subscription.id)
        etag = subscription.etag
        headers = {"If-Match": etag} if etag else None
        body = subscription.to_wire()
        if withdraw_scheduled_changes:
            body["scheduledNextTermInstructions"] = None

        async def recover() -> Subscription | None:
            current = await self.subscription(customer_id, subscription.id)
            withdrawn = not withdraw_scheduled_changes or current.scheduled_next_term_instructions is None
            if withdrawn and _changes_applied(subscription, current):
                return current
            if etag is None or current.etag == etag:
                return None
            raise PartnerCenterConflict(_(ETAG_MESSAGE), code="etag_mismatch")

        def parse(response: _Response) -> Subscription | _Accepted:
            if response.status == 202:
                return _Accepted(response.headers.get("Location"), _retry_after(response.headers, None))
            return Subscription.model_validate(response.json())

        result = await self._call("PATCH", url, parse, body=body, headers=headers, ok=(200, 202), recover=recover)
        if not isinstance(result, _Accepted):
            return result

        def finished(response: _Response) -> Subscription | None:
            document = response.json()
            return Subscription.model_validate(document) if isinstance(document, dict) and "id" in document else None

        polled = await self._poll(result, finished)
        return polled if polled is not None else await self.subscription(customer_id, subscription.id)

    async def subscription_addons(self, customer_id: str, subscription_id: str) -> list[Subscription]:
        return await self._all(
            self._url("customers", customer_id, "subscriptions", subscription_id, "addons"), Subscription
        )

    # --- Users and licences (app+user only, as Microsoft requires) ----------------------------------

    async def users_page(
        self, customer_id: str, *, page_size: int = 100, next_link: Link | None = None
    ) -> LazyPage[CustomerUser]:
        """One page of users; pass the previous page's `next_link` for the following one. The users
        are checked when first read (`items`), so the next page can be asked for first."""

        def parse(response: _Response) -> LazyPage[CustomerUser]:
            return LazyPage(Collection[Any].model_validate(response.json()), CustomerUser, response.url)

        if next_link is None:
            return await self._call(
                "GET",
                self._url("customers", customer_id, "users"),
                parse,
                params={"size": str(page_size)},
                kind="app_user",
            )
        headers = {item.key: item.value for item in next_link.headers if item.value is not None}
        return await self._call("GET", self._resolve(next_link.uri), parse, headers=headers, kind="app_user")

    async def users(self, customer_id: str, *, page_size: int = 100) -> AsyncGenerator[CustomerUser, None]:
        """Every user of the customer's tenant, page after page."""
        pages = self._pages(
            self._url("customers", customer_id, "users"), CustomerUser, params={"size": str(page_size)}, kind="app_user"
        )
        async with aclosing(pages):
            async for page in pages:
                for user in page.items:
                    yield user

    async def get_user(self, customer_id: str, user_id: str) -> CustomerUser:
        return await self._call(
            "GET", self._url("customers", customer_id, "users", user_id), _model(CustomerUser), kind="app_user"
        )

    async def create_user(self, customer_id: str, user: CustomerUser) -> CustomerUser:
        """Create a user (usageLocation is required for licences). If the answer is lost but the user
        exists, the existing user is returned (without a password; the caller chose it)."""
        principal = (user.user_principal_name or "").lower()

        async def recover() -> CustomerUser | None:
            users = self.users(customer_id)
            async with aclosing(users):
                async for existing in users:
                    if principal and (existing.user_principal_name or "").lower() == principal:
                        logger.warning("User creation had already gone through at Microsoft (user %s)", existing.id)
                        return existing
            return None

        return await self._call(
            "POST",
            self._url("customers", customer_id, "users"),
            _model(CustomerUser),
            body=user.to_wire(),
            kind="app_user",
            recover=recover,
        )

    async def update_user(self, customer_id: str, user_id: str, changes: CustomerUser) -> CustomerUser:
        """PATCH a user with the fields set in `changes` (e.g. a new password profile or display name)."""
        return await self._call(
            "PATCH",
            self._url("customers", customer_id, "users", user_id),
            _model(CustomerUser),
            body=changes.to_wire(),
            kind="app_user",
        )

    async def delete_user(self, customer_id: str, user_id: str) -> None:
        """Delete a user (Microsoft keeps it restorable for 30 days)."""

        async def recover() -> bool | None:
            try:
                await self.get_user(customer_id, user_id)
            except PartnerCenterNotFound:
                return True  # the lost attempt did delete it
            return None

        await self._call(
            "DELETE",
            self._url("customers", customer_id, "users", user_id),
            lambda _response: True,
            kind="app_user",
            recover=recover,
        )

    async def subscribed_skus(self, customer_id: str) -> list[SubscribedSku]:
        """Licence counts per licence SKU in the customer's tenant."""
        return await self._all(self._url("customers", customer_id, "subscribedskus"), SubscribedSku, kind="app_user")

    async def user_licenses(self, customer_id: str, user_id: str) -> list[License]:
        return await self._all(
            self._url("customers", customer_id, "users", user_id, "licenses"), License, kind="app_user"
        )

    async def update_user_licenses(self, customer_id: str, user_id: str, update: LicenseUpdate) -> LicenseUpdate:
        """Assign and/or remove licences (one licence group per call); 60012 when none is free."""
        return await self._call(
            "POST",
            self._url("customers", customer_id, "users", user_id, "licenseupdates"),
            _model(LicenseUpdate),
            body=update.to_wire(),
            kind="app_user",
        )

    # --- Audit ------------------------------------------------------------------------------------

    async def audit_records(
        self,
        start: date | datetime,
        end: date | datetime | None = None,
        *,
        size: int = 500,
        filter: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[AuditRecord, None]:
        """Changes recorded by Partner Center (Microsoft keeps 90 days), page after page.

        `filter` is Microsoft's `{"Field", "Value", "Operator"}`, e.g. a customer id with "equals".
        """
        params = {"startDate": start.isoformat(), "size": str(size)}
        if end is not None:
            params["endDate"] = end.isoformat()
        if filter:
            params["filter"] = json.dumps(dict(filter), separators=(",", ":"))
        pages = self._pages(self._url("auditrecords"), AuditRecord, params=params)
        async with aclosing(pages):
            async for page in pages:
                for record in page.items:
                    yield record
