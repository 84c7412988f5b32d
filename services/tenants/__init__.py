"""The organisation's Microsoft 365 tenant: link the one it has, or create a new one (SPEC §1).

- `form`: the form from the organisation's profile, checked by Microsoft's country rules (state,
  postal code, registration number, phone) and the prefix rules before anything is sent; every
  problem is reported per field (`FormInvalid`).
- `service` (`TenantService`): Microsoft's domain availability and address validation; `link_existing`
  records the caller's own Teams tenant once its global admin accepted the reseller relationship;
  `start_creation` claims the organisation's one tenant row (unique key: exactly once, whoever clicks
  how often) and submits the durable job `tenant.create`, which creates the customer with Microsoft
  (the job key is its MS-RequestId; the client finds a tenant whose answer was lost), records the
  customer id and the MCA attestation.
- `credentials` (`CredentialsMail`): e-mails the first admin's sign-in details (job
  `tenant.credentials_mail` retries a mail server that is down; the operator can resend).
- `views`: the states, `ServiceView` and the audit snapshot.
Every change is audited; the password is never returned, logged or put into an error.
"""

from services.tenants.credentials import CredentialsMail
from services.tenants.form import (
    CountryProfile,
    FormInvalid,
    TenantForm,
    country_profile_of,
    mask_email,
    prefix_problem,
    suggest_prefix,
    validate_form,
)
from services.tenants.service import TenantService
from services.tenants.views import ACTIVE, CREATE_JOB, CREATING, MAIL_JOB, AddressCheck, MicrosoftContact, ServiceView

__all__ = [
    "ACTIVE",
    "CREATE_JOB",
    "CREATING",
    "MAIL_JOB",
    "AddressCheck",
    "CountryProfile",
    "CredentialsMail",
    "FormInvalid",
    "MicrosoftContact",
    "ServiceView",
    "TenantForm",
    "TenantService",
    "country_profile_of",
    "mask_email",
    "prefix_problem",
    "suggest_prefix",
    "validate_form",
]
