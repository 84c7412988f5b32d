"""Tolerant pydantic models of Partner Center's wire JSON.

Microsoft adds fields and enum values without notice (subscription statuses `expired` and
`disabled` broke clients that used closed enums), so every model here:

- maps snake_case attributes to camelCase on the wire and also accepts PascalCase or any other
  casing of a known key (Microsoft's own examples mix them, and its API is case-insensitive on input);
- keeps unknown fields (`extra="allow"`), so a full-resource PATCH sends back what it was given;
- types enums as `OpenStrEnum`: known values are members, any other string survives as a
  pseudo-member instead of failing validation.

Secrets (generated admin passwords, new users' passwords) are `SecretStr`, so they never appear in
`repr`, logs or tracebacks; `WireModel.to_wire()` is the one place they are revealed, for a request body.

Annotations are not postponed (`from __future__ import annotations`): pydantic would evaluate each field's from
its text at every start; only the two references to classes defined further down are written as text.
"""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_pascal

CONTINUATION_HEADER = "MS-ContinuationToken"


# --- Building blocks ----------------------------------------------------------------------------


class OpenStrEnum(StrEnum):
    """A string enum that never rejects a value.

    Known values (matched case-insensitively, since Microsoft writes `monthly` and `Monthly`) become
    the member; anything else becomes a pseudo-member carrying the original string, so comparisons
    with plain strings and serialization keep working when Microsoft adds a value.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        lowered = value.lower()
        for member in cls:
            if member.value.lower() == lowered:
                return member
        pseudo = str.__new__(cls, value)
        pseudo._name_ = value
        pseudo._value_ = value
        return pseudo

    @property
    def is_known(self) -> bool:
        """False for a value this code has not been told about (worth a log line, not a crash)."""
        return type(self).__members__.get(self._name_) is self


def _empty_to_none(value: Any) -> Any:
    """Microsoft sends "" where it means "no value" (dates, ids); treat both alike."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


WireDateTime = Annotated[datetime | None, BeforeValidator(_empty_to_none)]
WireDecimal = Annotated[Decimal | None, BeforeValidator(_empty_to_none)]


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, any key casing accepted, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        coerce_numbers_to_str=True,
        # Each model's validator is built when first used, not when the bot starts (a third of this module's
        # import time; most models serve one Partner Center call).
        defer_build=True,
    )

    _keys_by_lower_name: ClassVar[dict[str, str]] = {}
    # The keys needing no renaming (field names and aliases as declared): most answers use only these.
    _exact_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
            keys[name.lower()] = name
            if alias:
                keys[alias.lower()] = alias
        cls._keys_by_lower_name = keys
        cls._exact_keys = frozenset(keys.values())

    @model_validator(mode="before")
    @classmethod
    def _accept_any_key_casing(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.keys() <= cls._exact_keys:
            return data  # the fast path (one set comparison in C): every key already as declared
        keys = cls._keys_by_lower_name
        renamed: dict[str, Any] | None = None
        for key in data:
            if not isinstance(key, str):
                continue
            target = keys.get(key.lower())
            if target is not None and target != key and target not in data:
                if renamed is None:
                    renamed = dict(data)
                renamed[target] = renamed.pop(key)
        return data if renamed is None else renamed

    def to_wire(self) -> dict[str, Any]:
        """The JSON body Microsoft expects: camelCase, no nulls, secrets revealed (for requests only)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, context={"reveal_secrets": True})


def _reveal_if_asked(value: SecretStr | None, info: SerializationInfo) -> str | None:
    if value is None:
        return None
    context = info.context if isinstance(info.context, dict) else {}
    return value.get_secret_value() if context.get("reveal_secrets") else str(value)


class ResourceAttributes(WireModel):
    """`attributes` on every resource: the object type and, for mutable resources, the e-tag."""

    etag: str | None = None
    object_type: str | None = None


class KeyValue(WireModel):
    key: str
    value: str | None = None


class Link(WireModel):
    """A hypermedia link; `uri` is relative to the API version root (e.g. `/customers/...`)."""

    uri: str
    method: str = "GET"
    headers: list[KeyValue] = Field(default_factory=list)

    def header(self, name: str) -> str | None:
        for item in self.headers:
            if item.key.lower() == name.lower():
                return item.value
        return None


def _link(links: dict[str, Link | None] | None, name: str) -> Link | None:
    for key, value in (links or {}).items():
        if key.lower() == name.lower():
            return value
    return None


T = TypeVar("T")


class Collection(WireModel, Generic[T]):
    """Microsoft's collection envelope; `next_link` is set when more pages follow."""

    total_count: int | None = None
    items: list[T] = Field(default_factory=list)
    links: dict[str, Link | None] | None = None
    continuation_token: str | None = None
    attributes: ResourceAttributes | None = None

    @property
    def next_link(self) -> Link | None:
        return _link(self.links, "next")

    @property
    def continuation(self) -> str | None:
        """The token for the next page, from the `next` link's header or the body."""
        link = self.next_link
        token = link.header(CONTINUATION_HEADER) if link is not None else None
        return token or self.continuation_token


# --- Errors on the wire ---------------------------------------------------------------------------


class ApiFault(WireModel):
    """Partner Center's error body `{code, description, data, source}`."""

    code: str | None = None
    description: str | None = None
    data: list[Any] | None = None
    source: str | None = None


class ThrottledFault(WireModel):
    """The 429 body, which differs from ApiFault: `{statusCode, message}`."""

    status_code: int | None = None
    message: str | None = None


# --- Enums ------------------------------------------------------------------------------------------


class SubscriptionStatus(OpenStrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"
    EXPIRED = "expired"
    DISABLED = "disabled"
    PENDING = "pending"
    NONE = "none"


class BillingCycle(OpenStrEnum):
    MONTHLY = "monthly"
    ANNUAL = "annual"
    TRIENNIAL = "triennial"
    ONE_TIME = "one_time"
    NONE = "none"
    UNKNOWN = "unknown"


class CartStatus(OpenStrEnum):
    ACTIVE = "Active"
    ORDERED = "Ordered"
    EXPIRED = "Expired"


class OrderStatus(OpenStrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AddressValidationStatus(OpenStrEnum):
    VERIFIED_SHIPPABLE = "VerifiedShippable"
    VERIFIED = "Verified"
    INTERACTION_REQUIRED = "InteractionRequired"
    STREET_PARTIAL = "StreetPartial"
    PREMISES_PARTIAL = "PremisesPartial"
    MULTIPLE = "Multiple"
    NONE = "None"
    NOT_VALIDATED = "NotValidated"


class UserState(OpenStrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


# --- Customers ----------------------------------------------------------------------------------


class Address(WireModel):
    """A postal address (billing default address, address validation request)."""

    country: str | None = None
    region: str | None = None
    city: str | None = None
    state: str | None = None
    district: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    address_line3: str | None = None
    postal_code: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    phone_number: str | None = None


class CustomerBillingProfile(WireModel):
    id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    culture: str | None = None
    language: str | None = None
    company_name: str | None = None
    default_address: Address | None = None
    attributes: ResourceAttributes | None = None


class CustomerCompanyProfile(WireModel):
    tenant_id: str | None = None
    domain: str | None = None
    company_name: str | None = None
    organization_registration_number: str | None = None
    attributes: ResourceAttributes | None = None


class UserCredentials(WireModel):
    """The customer's first admin account, returned once by create-customer; e-mailed, never shown."""

    user_name: str | None = None
    password: SecretStr | None = None

    @field_serializer("password")
    def _password(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        return _reveal_if_asked(value, info)


class Customer(WireModel):
    """A customer tenant. `id` is the tenant id. `user_credentials` only on the create response."""

    id: str | None = None
    commerce_id: str | None = None
    company_profile: CustomerCompanyProfile | None = None
    billing_profile: CustomerBillingProfile | None = None
    relationship_to_partner: str | None = None
    allow_delegated_access: bool | None = None
    user_credentials: UserCredentials | None = None
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None

    @property
    def domain(self) -> str | None:
        return self.company_profile.domain if self.company_profile else None


class CountryValidationRules(WireModel):
    iso2_code: str | None = None
    default_culture: str | None = None
    is_state_required: bool | None = None
    supported_states_list: list[str] = Field(default_factory=list)
    supported_languages_list: list[str] = Field(default_factory=list)
    supported_cultures_list: list[str] = Field(default_factory=list)
    is_postal_code_required: bool | None = None
    postal_code_regex: str | None = None
    is_city_required: bool | None = None
    is_vat_id_supported: bool | None = None
    tax_id_format: str | None = None
    tax_id_sample: str | None = None
    vat_id_regex: str | None = None
    is_tax_id_supported: bool | None = None
    is_tax_id_optional: bool | None = None
    country_calling_codes_list: list[str] = Field(default_factory=list)
    attributes: ResourceAttributes | None = None


class AddressValidationResult(WireModel):
    original_address: Address | None = None
    suggested_addresses: list[Address] = Field(default_factory=list)
    status: AddressValidationStatus | None = None
    validation_message: str | None = None


class RelationshipRequest(WireModel):
    """The reseller-relationship invitation link a customer's admin opens to accept the reseller."""

    url: str


class Contact(WireModel):
    first_name: str
    last_name: str
    email: str
    phone_number: str | None = None


class AgreementMetaData(WireModel):
    template_id: str | None = None
    agreement_type: str | None = None
    agreement_link: str | None = None
    version_rank: int | None = None


class Agreement(WireModel):
    """A partner's attestation that the customer accepted an agreement (e.g. the MCA)."""

    user_id: str | None = None
    primary_contact: Contact | None = None
    template_id: str | None = None
    date_agreed: WireDateTime = None
    type: str | None = None
    agreement_link: str | None = None
    attributes: ResourceAttributes | None = None


# --- Catalog --------------------------------------------------------------------------------------


class ItemType(WireModel):
    id: str | None = None
    display_name: str | None = None
    sub_type: "ItemType | None" = None


class Product(WireModel):
    id: str
    title: str | None = None
    description: str | None = None
    product_type: ItemType | None = None
    is_microsoft_product: bool | None = None
    publisher_name: str | None = None
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None


class SkuDynamicAttributes(WireModel):
    """Microsoft's open dictionary of SKU traits; the ones the bot relies on are typed."""

    is_addon: bool | None = None
    has_add_ons: bool | None = None
    prerequisite_skus: list[str] | None = None
    upgrade_target_offers: list[str] | None = None
    is_microsoft_product: bool | None = None
    provisioning_id: str | None = None


class Sku(WireModel):
    """A SKU. Add-on relations live in `dynamicAttributes`; `provisioningId` there is the
    licence (Azure AD) SKU id that subscribed SKUs and licence assignments use."""

    id: str
    product_id: str | None = None
    title: str | None = None
    description: str | None = None
    minimum_quantity: int | None = None
    maximum_quantity: int | None = None
    is_trial: bool | None = None
    supported_billing_cycles: list[BillingCycle] = Field(default_factory=list)
    purchase_prerequisites: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    dynamic_attributes: SkuDynamicAttributes | None = None
    consumption_type: str | None = None
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None

    @property
    def is_addon(self) -> bool:
        return bool(self.dynamic_attributes and self.dynamic_attributes.is_addon)

    @property
    def prerequisite_skus(self) -> list[str]:
        """Base SKUs (`productId:skuId`) an add-on can be bought for."""
        return list(self.dynamic_attributes.prerequisite_skus or []) if self.dynamic_attributes else []

    @property
    def licence_sku_id(self) -> str | None:
        return self.dynamic_attributes.provisioning_id if self.dynamic_attributes else None


class CurrencyInfo(WireModel):
    code: str | None = None
    symbol: str | None = None


class CancellationRefundOption(WireModel):
    sequence_id: int | None = None
    type: str | None = None
    expires_after: str | None = None


class CancellationPolicy(WireModel):
    refund_options: list[CancellationRefundOption] = Field(default_factory=list)


class AvailabilityTerm(WireModel):
    duration: str | None = None
    description: str | None = None
    billing_cycle: BillingCycle | None = None
    cancellation_policies: list[CancellationPolicy] = Field(default_factory=list)


class Availability(WireModel):
    """What can be bought now: id (may rotate - re-read before buying), terms and billing cycles."""

    id: str
    product_id: str | None = None
    sku_id: str | None = None
    catalog_item_id: str | None = None
    default_currency: CurrencyInfo | None = None
    segment: str | None = None
    country: str | None = None
    is_purchasable: bool | None = None
    is_renewable: bool | None = None
    terms: list[AvailabilityTerm] = Field(default_factory=list)
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None


def _parse_sheet_datetime(value: Any) -> Any:
    """Price sheets write dates as ISO 8601 or US style (`2/1/2023 0:00`, `3/1/2018 12:00:00 AM`)."""
    value = _empty_to_none(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for pattern in _SHEET_DATE_PATTERNS:
            try:
                parsed = datetime.strptime(text, pattern).replace(tzinfo=UTC)  # the sheet's dates are UTC
                break
            except ValueError:
                continue
    if parsed is None:
        raise ValueError(f"not a date: {text!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_SHEET_DATE_PATTERNS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y")


def _parse_sheet_decimal(value: Any) -> Any:
    value = _empty_to_none(value)
    if isinstance(value, str):
        try:
            return Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    return value


SheetDateTime = Annotated[datetime | None, BeforeValidator(_parse_sheet_datetime)]
SheetDecimal = Annotated[Decimal | None, BeforeValidator(_parse_sheet_decimal)]


class PriceSheetRow(WireModel):
    """One row of Microsoft's license-based (new commerce) price sheet CSV: the reseller's cost.

    Prices are keyed by product, SKU, term and billing plan - never by availability id, which rotates.
    """

    model_config = ConfigDict(alias_generator=to_pascal)

    product_title: str | None = None
    product_id: str
    sku_id: str
    sku_title: str | None = None
    publisher: str | None = None
    sku_description: str | None = None
    unit_of_measure: str | None = None
    term_duration: str | None = None
    billing_plan: str | None = None
    market: str | None = None
    currency: str | None = None
    unit_price: SheetDecimal = None
    pricing_tier_range_min: SheetDecimal = None
    pricing_tier_range_max: SheetDecimal = None
    effective_start_date: SheetDateTime = None
    effective_end_date: SheetDateTime = None
    end_of_sale_date: SheetDateTime = None
    tags: str | None = None
    erp_price: SheetDecimal = Field(default=None, validation_alias="ERP Price", serialization_alias="ERP Price")
    segment: str | None = None

    @property
    def sku_key(self) -> str:
        """`productId:skuId`, upper-case, with the SKU id zero-padded as the catalog writes it."""
        sku = self.sku_id.strip()
        if sku.isdigit() and len(sku) < 4:
            sku = sku.zfill(4)
        return f"{self.product_id.strip()}:{sku}".upper()


# --- Carts and orders -------------------------------------------------------------------------------


class CartError(WireModel):
    error_code: str | None = None
    error_description: str | None = None


class CartLineItem(WireModel):
    """A cart line. For an add-on, `provisioningContext` carries the parent subscription id."""

    id: int = 0
    catalog_item_id: str
    friendly_name: str | None = None
    quantity: int
    currency_code: str | None = None
    billing_cycle: BillingCycle | None = None
    term_duration: str | None = None
    promotion_id: str | None = None
    provisioning_context: dict[str, str] | None = None
    order_group: str | None = None
    addon_items: "list[CartLineItem] | None" = None
    error: CartError | None = None
    custom_term_end_date: WireDateTime = None

    @property
    def parent_subscription_id(self) -> str | None:
        for key, value in (self.provisioning_context or {}).items():
            if key.lower() == "parentsubscriptionid":
                return value
        return None


class Cart(WireModel):
    id: str | None = None
    creation_timestamp: WireDateTime = None
    last_modified_timestamp: WireDateTime = None
    expiration_timestamp: WireDateTime = None
    last_modified_user: str | None = None
    status: CartStatus | None = None
    line_items: list[CartLineItem] = Field(default_factory=list)
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None


class OrderLineItem(WireModel):
    line_item_number: int | None = None
    offer_id: str | None = None
    subscription_id: str | None = None
    parent_subscription_id: str | None = None
    term_duration: str | None = None
    transaction_type: str | None = None
    friendly_name: str | None = None
    quantity: int | None = None
    partner_id_on_record: str | None = None
    provisioning_context: dict[str, str | None] | None = None
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None


class Order(WireModel):
    id: str | None = None
    alternate_id: str | None = None
    reference_customer_id: str | None = None
    billing_cycle: BillingCycle | None = None
    currency_code: str | None = None
    currency_symbol: str | None = None
    line_items: list[OrderLineItem] = Field(default_factory=list)
    creation_date: WireDateTime = None
    status: OrderStatus | None = None
    transaction_type: str | None = None
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None


class OrderError(WireModel):
    order_group_id: str | None = None
    code: str | None = None
    description: str | None = None


class CartCheckoutResult(WireModel):
    orders: list[Order] = Field(default_factory=list)
    order_errors: list[OrderError] = Field(default_factory=list)


# --- Subscriptions ------------------------------------------------------------------------------


class RefundableQuantityDetail(WireModel):
    quantity: int
    allowed_until_date_time: WireDateTime = None


class RefundableQuantity(WireModel):
    """Seats that can still be removed, each batch with the end of its own return window."""

    total_quantity: int = 0
    details: list[RefundableQuantityDetail] = Field(default_factory=list)


class RefundOption(WireModel):
    type: str | None = None
    expires_at: WireDateTime = None


class ProductTerm(WireModel):
    product_id: str | None = None
    sku_id: str | None = None
    availability_id: str | None = None
    billing_cycle: BillingCycle | None = None
    term_duration: str | None = None
    promotion_id: str | None = None


class ScheduledNextTermInstructions(WireModel):
    """What the subscription becomes at renewal (the NCE way to lower seats after the window)."""

    product: ProductTerm | None = None
    quantity: int | None = None
    custom_term_end_date: WireDateTime = None


class Subscription(WireModel):
    """A subscription. PATCH sends the whole resource back with `If-Match: <etag>`."""

    id: str
    offer_id: str | None = None
    offer_name: str | None = None
    friendly_name: str | None = None
    product_type: ItemType | None = None
    quantity: int | None = None
    unit_type: str | None = None
    parent_subscription_id: str | None = None
    has_purchasable_addons: bool | None = None
    creation_date: WireDateTime = None
    effective_start_date: WireDateTime = None
    commitment_end_date: WireDateTime = None
    cancellation_allowed_until_date: WireDateTime = None
    billing_cycle_end_date: WireDateTime = None
    status: SubscriptionStatus | None = None
    auto_renew_enabled: bool | None = None
    scheduled_next_term_instructions: ScheduledNextTermInstructions | None = None
    refundable_quantity: RefundableQuantity | None = None
    refund_options: list[RefundOption] | None = None
    is_trial: bool | None = None
    billing_type: str | None = None
    billing_cycle: BillingCycle | None = None
    term_duration: str | None = None
    renewal_term_duration: str | None = None
    is_microsoft_product: bool | None = None
    partner_id: str | None = None
    suspension_reasons: list[str] | None = None
    actions: list[str] | None = None
    contract_type: str | None = None
    publisher_name: str | None = None
    order_id: str | None = None
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None

    @property
    def etag(self) -> str | None:
        """The optimistic-concurrency token to send as `If-Match` when changing this subscription."""
        if self.attributes is not None and self.attributes.etag:
            return self.attributes.etag
        extra = (self.model_extra or {}).get("etag")
        return extra if isinstance(extra, str) else None

    @property
    def sku_key(self) -> str | None:
        """`productId:skuId` of an NCE subscription (its offer id is `product:sku:availability`)."""
        if not self.offer_id or ":" not in self.offer_id:
            return None
        return ":".join(self.offer_id.split(":")[:2]).upper()


# --- Users and licences -------------------------------------------------------------------------


class PasswordProfile(WireModel):
    password: SecretStr | None = None
    force_change_password: bool | None = None

    @field_serializer("password")
    def _password(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        return _reveal_if_asked(value, info)


class SignInActivity(WireModel):
    """Microsoft Graph's `signInActivity` of a user (the built-in sandbox reports it on its users)."""

    last_sign_in_date_time: WireDateTime = None


class CustomerUser(WireModel):
    id: str | None = None
    user_principal_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    usage_location: str | None = None
    immutable_id: str | None = None
    password_profile: PasswordProfile | None = None
    last_directory_sync_time: WireDateTime = None
    user_domain_type: str | None = None
    state: UserState | None = None
    soft_deletion_time: WireDateTime = None
    sign_in_activity: SignInActivity | None = None
    links: dict[str, Link | None] | None = None
    attributes: ResourceAttributes | None = None


class ProductSku(WireModel):
    """A licence SKU as Azure AD knows it (the id licence assignments use)."""

    id: str
    name: str | None = None
    sku_part_number: str | None = None
    target_type: str | None = None
    license_group_id: str | None = None


class ServicePlan(WireModel):
    id: str | None = None
    display_name: str | None = None
    service_name: str | None = None
    capability_status: str | None = None
    target_type: str | None = None


class SubscribedSku(WireModel):
    """Licence counts of one licence SKU in the customer's tenant, pooled over subscriptions."""

    available_units: int | None = None
    active_units: int | None = None
    consumed_units: int | None = None
    suspended_units: int | None = None
    total_units: int | None = None
    warning_units: int | None = None
    product_sku: ProductSku
    service_plans: list[ServicePlan] = Field(default_factory=list)
    capability_status: str | None = None
    attributes: ResourceAttributes | None = None


class License(WireModel):
    product_sku: ProductSku
    service_plans: list[ServicePlan] = Field(default_factory=list)
    attributes: ResourceAttributes | None = None


class LicenseAssignment(WireModel):
    sku_id: str
    excluded_plans: list[str] | None = None


class LicenseWarning(WireModel):
    code: str | None = None
    message: str | None = None
    service_plans: list[str] | None = None


class LicenseUpdate(WireModel):
    """Assign and/or remove licences of one licence group for one user."""

    licenses_to_assign: list[LicenseAssignment] | None = None
    licenses_to_remove: list[str] | None = None
    license_warnings: list[LicenseWarning] | None = None
    attributes: ResourceAttributes | None = None


# --- Audit, invoices, webhooks ----------------------------------------------------------------------


class AuditRecord(WireModel):
    """One change made through Partner Center (by this app or elsewhere); used to discover changes.

    The old/new values are Microsoft's JSON snapshots and may hold personal data: kept out of repr.
    """

    id: str | None = None
    partner_id: str | None = None
    customer_id: str | None = None
    customer_name: str | None = None
    user_principal_name: str | None = None
    application_id: str | None = None
    resource_type: str | None = None
    resource_old_value: str | None = Field(default=None, repr=False)
    resource_new_value: str | None = Field(default=None, repr=False)
    operation_type: str | None = None
    original_correlation_id: str | None = None
    operation_date: WireDateTime = None
    operation_status: str | None = None
    customized_data: list[KeyValue] = Field(default_factory=list)
    attributes: ResourceAttributes | None = None

    def data(self, key: str) -> str | None:
        for item in self.customized_data:
            if item.key.lower() == key.lower():
                return item.value
        return None
