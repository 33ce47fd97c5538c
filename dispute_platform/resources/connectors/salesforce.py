"""Salesforce as the CRM: cases and their accounts over the REST API (SOQL queries), outcomes
written back as the case's Status plus a CaseComment.

SOQL over REST has no bind parameters, so every value that comes from dispute data is first
checked against a strict pattern (a Salesforce record id, or the platform's case-id pattern) and
then written as a SOQL string literal with Salesforce's escape rules. Field and object names come
from configuration and are checked to be plain API names.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any
from urllib.parse import quote

from pydantic import Field

from dispute_platform.domain.models import (
    CASE_ID_PATTERN,
    Account,
    Case,
    CrmRecord,
    Incident,
    Segment,
)
from dispute_platform.resources.connectors.http import (
    Authenticator,
    ClientCredentials,
    ConnectorConfigError,
    ConnectorDataError,
    ConnectorNotFound,
    HTTPConnectorResource,
    InvalidIdentifier,
    StaticBearer,
    VendorHTTP,
    mapping_errors,
)
from dispute_platform.resources.providers import CaseNotFound

VENDOR = "Salesforce"

# A record id is 15 case-sensitive or 18 case-insensitive alphanumerics; the first three are
# the object's key prefix (500 = Case, 001 = Account).
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_CASE_KEY = re.compile(CASE_ID_PATTERN)
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")
_API_VERSION = re.compile(r"v\d{2,3}\.0")

# Salesforce's escape sequences for quoted SOQL strings. Other control characters have no
# escape and cannot be part of a key the platform accepts, so they are refused outright.
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_UNESCAPABLE = re.compile(r"[\x00-\x07\x0b\x0e-\x1f\x7f]")


def soql_literal(value: str) -> str:
    """`value` as a quoted SOQL string literal (for `=` comparisons, not LIKE)."""
    if _UNESCAPABLE.search(value):
        raise InvalidIdentifier("value contains control characters that SOQL cannot express")
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def is_record_id(value: str, key_prefix: str | None = None) -> bool:
    if _RECORD_ID.fullmatch(value) is None:
        return False
    return key_prefix is None or value.startswith(key_prefix)


def api_name(name: str) -> str:
    """A configured field or object name, refused unless it is a plain API name."""
    if _API_NAME.fullmatch(name) is None:
        raise ConnectorConfigError(VENDOR, "configuration", f"{name!r} is not a Salesforce API name")
    return name


def _picklist(value: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(value).strip().lower()).strip("_")


def _money(value: Any, *, field: str, record: str) -> Decimal:
    if value is None:
        raise ConnectorDataError(VENDOR, "fetch_case", f"{record} has no {field}")
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise ConnectorDataError(VENDOR, "fetch_case", f"{record} has a non-numeric {field}: {value!r}") from exc


def _datetime(value: Any, *, field: str, record: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value))  # "2026-10-05T08:13:00.000+0000"
    except ValueError as exc:
        raise ConnectorDataError(VENDOR, "fetch_case", f"{record} has an unreadable {field}: {value!r}") from exc


class SalesforceCRM(HTTPConnectorResource):
    """Cases and accounts from Salesforce. Authenticates with an access token, or with a
    connected app's client credentials (the token is then fetched and renewed here)."""

    instance_url: str = Field(description="https://yourorg.my.salesforce.com")
    access_token: str | None = Field(default=None, description="OAuth access token (an EnvVar).")
    client_id: str | None = Field(default=None, description="Connected app consumer key, for the client-credentials flow.")
    client_secret: str | None = Field(default=None, description="Connected app consumer secret (an EnvVar).")
    api_version: str = Field(default="v60.0", description="REST API version, e.g. v60.0.")
    case_id_field: str = Field(
        default="Id", description="Case field that holds the platform's case id: Id, CaseNumber or an external-id field."
    )
    customer_id_field: str = Field(
        default="Id", description="Account field that holds the platform's customer id: Id or an external-id field."
    )
    amount_field: str = "Amount__c"
    currency_field: str = Field(default="Currency__c", description="Currency__c, or CurrencyIsoCode in multi-currency orgs.")
    dispute_type_field: str = "Dispute_Type__c"
    charge_id_field: str = "Charge_Id__c"
    segment_field: str = "Customer_Segment__c"
    account_status_field: str = "Account_Status__c"
    standing_field: str = "Standing__c"
    email_field: str | None = Field(default=None, description="PersonEmail in orgs with person accounts; unset otherwise.")
    phone_field: str | None = "Phone"
    incident_object: str | None = Field(
        default=None, description="Custom object of outages that affected an account (e.g. Service_Incident__c); unset: none."
    )
    incident_account_field: str = "Account__c"
    incident_start_field: str = "Started_At__c"
    incident_end_field: str = "Ended_At__c"
    incident_summary_field: str = "Summary__c"
    incident_maintenance_field: str | None = "Scheduled_Maintenance__c"
    incident_lookback_days: int = Field(default=400, ge=1, le=4000)
    status_values: dict[str, str] = Field(
        default_factory=dict, description="Platform status -> Case Status picklist value; unmapped statuses are sent as they are."
    )

    # --- plumbing --------------------------------------------------------------------------

    @cached_property
    def _http(self) -> VendorHTTP:
        if _API_VERSION.fullmatch(self.api_version) is None:
            raise ConnectorConfigError(VENDOR, "configuration", f"api_version {self.api_version!r} is not like v60.0")
        http = VendorHTTP(
            VENDOR,
            self.instance_url,
            timeout_seconds=self.timeout_seconds,
            policy=self.retry_policy(),
            auth_hint="check SALESFORCE_ACCESS_TOKEN, or the connected app's client credentials, and the user's permissions",
        )
        auth: Authenticator
        if self.access_token:
            auth = StaticBearer(self.access_token)
        elif self.client_id and self.client_secret:
            auth = ClientCredentials(http, "/services/oauth2/token", self.client_id, self.client_secret)
        else:
            raise ConnectorConfigError(VENDOR, "configuration", "needs an access token or a client id and secret")
        http.auth = auth
        return http

    @property
    def _data_path(self) -> str:
        return f"/services/data/{self.api_version}"

    def _query(self, operation: str, soql: str) -> list[dict[str, Any]]:
        """All records of a SOQL query, following nextRecordsUrl."""
        reply = self._http.request(operation, "GET", f"{self._data_path}/query", params={"q": soql}).json()
        records = list(reply.get("records", []))
        while not reply.get("done", True) and reply.get("nextRecordsUrl"):
            path = self._http.same_origin_path(reply["nextRecordsUrl"])
            if not path.startswith("/services/data/"):
                raise ConnectorDataError(VENDOR, operation, "nextRecordsUrl is outside the REST API")
            reply = self._http.request(operation, "GET", path).json()
            records += reply.get("records", [])
        return records

    def _case_condition(self, case_id: str) -> str:
        """`<field> = <literal>` for a case id, or CaseNotFound for an id that cannot exist."""
        field = api_name(self.case_id_field)
        if field == "Id":
            if not is_record_id(case_id, "500"):
                raise CaseNotFound(f"case {case_id!r} is not a Salesforce Case Id (500 + 12 or 15 letters and digits)")
        elif not isinstance(case_id, str) or _CASE_KEY.fullmatch(case_id) is None:
            raise CaseNotFound(f"case {case_id!r} is not a valid case key for {field}")
        try:
            return f"{field} = {soql_literal(case_id)}"
        except InvalidIdentifier as exc:
            raise CaseNotFound(f"case id refused: {exc}") from exc

    # --- CRMProvider -----------------------------------------------------------------------

    def fetch_case(self, case_id: str) -> CrmRecord:
        with mapping_errors(VENDOR, "fetch_case"):
            return self._fetch_case(case_id)

    def _fetch_case(self, case_id: str) -> CrmRecord:
        condition = self._case_condition(case_id)
        case_fields = ["Id", "CaseNumber", "AccountId", "Subject", "Description", "Status", "Origin", "CreatedDate"]
        case_fields += [
            api_name(f) for f in (self.amount_field, self.currency_field, self.dispute_type_field, self.charge_id_field)
        ]
        account_fields = ["Id", "Name", "BillingCountry", "CreatedDate"]
        account_fields += [
            api_name(f) for f in (self.customer_id_field, self.segment_field, self.account_status_field, self.standing_field)
        ]
        account_fields += [api_name(f) for f in (self.email_field, self.phone_field) if f]
        fields = list(dict.fromkeys(case_fields)) + [f"Account.{f}" for f in dict.fromkeys(account_fields)]
        soql = f"SELECT {', '.join(fields)} FROM Case WHERE {condition} LIMIT 2"  # noqa: S608 - field names from config via api_name(); values through soql_literal()
        records = self._query("fetch_case", soql)
        if not records:
            raise CaseNotFound(f"case {case_id} does not exist in Salesforce")
        if len(records) > 1:
            raise ConnectorDataError(VENDOR, "fetch_case", f"{self.case_id_field} {case_id} matches more than one Case")
        row = records[0]
        account_row = row.get("Account")
        if not row.get("AccountId") or not isinstance(account_row, dict):
            raise CaseNotFound(f"case {case_id} has no account in Salesforce, so there is no customer to resolve it for")
        account = self._account(account_row)
        case = self._case(case_id, row, account.customer_id)
        return CrmRecord(case=case, account=account, incidents=self._incidents(account_row["Id"]))

    def _account(self, row: dict[str, Any]) -> Account:
        record = f"account {row.get('Id')}"
        customer_id = row.get(self.customer_id_field)
        if not customer_id:
            raise ConnectorDataError(VENDOR, "fetch_case", f"{record} has no {self.customer_id_field}")
        segment_raw = row.get(self.segment_field)
        segment = _picklist(segment_raw or "")
        if segment not in {s.value for s in Segment}:
            raise ConnectorDataError(
                VENDOR, "fetch_case", f"{record} has {self.segment_field}={segment_raw!r}; expected SMB, Mid-Market or Enterprise"
            )
        values: dict[str, Any] = {"customer_id": str(customer_id), "name": row.get("Name") or "", "segment": segment}
        for model_field, sf_field, allowed in (
            ("status", self.account_status_field, ("active", "suspended", "closed")),
            ("standing", self.standing_field, ("good", "past_due", "collections")),
        ):
            raw = row.get(sf_field)
            if raw is None:
                continue  # the model's default (active, good), as for accounts without the field set
            if _picklist(raw) not in allowed:
                raise ConnectorDataError(VENDOR, "fetch_case", f"{record} has {sf_field}={raw!r}; expected one of {allowed}")
            values[model_field] = _picklist(raw)
        if row.get("BillingCountry"):
            values["country"] = row["BillingCountry"]
        if self.email_field and row.get(self.email_field):
            values["email"] = row[self.email_field]
        if self.phone_field and row.get(self.phone_field):
            values["phone"] = row[self.phone_field]
        if not row.get("CreatedDate"):
            raise ConnectorDataError(VENDOR, "fetch_case", f"{record} has no CreatedDate")
        values["created_at"] = _datetime(row["CreatedDate"], field="CreatedDate", record=record).date()
        return Account(**values)

    def _case(self, case_id: str, row: dict[str, Any], customer_id: str) -> Case:
        record = f"case {case_id}"
        currency = row.get(self.currency_field)
        return Case(
            case_id=case_id,
            customer_id=customer_id,
            dispute_type=_picklist(row.get(self.dispute_type_field) or "general") or "general",
            amount=_money(row.get(self.amount_field), field=self.amount_field, record=record),
            currency=str(currency).upper() if currency else "USD",
            description=row.get("Description") or "",
            subject=row.get("Subject") or "",
            opened_at=_datetime(row.get("CreatedDate"), field="CreatedDate", record=record),
            charge_id=row.get(self.charge_id_field) or None,
            status=_picklist(row.get("Status") or "open"),
            origin=_picklist(row.get("Origin") or "web"),
        )

    def _incidents(self, account_id: str) -> list[Incident]:
        if not self.incident_object:
            return []
        if not is_record_id(account_id, "001"):
            raise ConnectorDataError(VENDOR, "fetch_case", f"account id {account_id!r} is not a Salesforce Account Id")
        start, end = api_name(self.incident_start_field), api_name(self.incident_end_field)
        fields = ["Id", "Name", start, end, api_name(self.incident_summary_field)]
        if self.incident_maintenance_field:
            fields.append(api_name(self.incident_maintenance_field))
        soql = (
            f"SELECT {', '.join(dict.fromkeys(fields))} FROM {api_name(self.incident_object)} "  # noqa: S608 - field names from config via api_name(); values through soql_literal()
            f"WHERE {api_name(self.incident_account_field)} = {soql_literal(account_id)} "
            f"AND {start} = LAST_N_DAYS:{int(self.incident_lookback_days)} ORDER BY {start} DESC"
        )
        incidents = []
        for row in self._query("fetch_case incidents", soql):
            if not row.get(start) or not row.get(end):
                continue  # an outage still open has no duration to credit yet
            record = f"incident {row.get('Id')}"
            incidents.append(
                Incident(
                    incident_id=row.get("Name") or row["Id"],
                    started_at=_datetime(row[start], field=start, record=record),
                    ended_at=_datetime(row[end], field=end, record=record),
                    summary=row.get(self.incident_summary_field) or "",
                    scheduled_maintenance=bool(self.incident_maintenance_field and row.get(self.incident_maintenance_field)),
                )
            )
        return incidents

    def _case_record_id(self, case_id: str) -> str:
        condition = self._case_condition(case_id)
        if self.case_id_field == "Id":
            return case_id
        records = self._query("record_outcome", f"SELECT Id FROM Case WHERE {condition} LIMIT 2")  # noqa: S608 - field names from config via api_name(); values through soql_literal()
        if len(records) != 1:
            raise CaseNotFound(f"case {case_id} does not exist in Salesforce" if not records else f"case {case_id} is ambiguous")
        return records[0]["Id"]

    def record_outcome(self, case_id: str, status: str, comment: str) -> None:
        record_id = self._case_record_id(case_id)
        if not is_record_id(record_id, "500"):
            raise ConnectorDataError(VENDOR, "record_outcome", f"Salesforce returned {record_id!r} as a Case Id")
        path = f"{self._data_path}/sobjects/Case/{quote(record_id, safe='')}"
        try:
            # Setting a field to a value is idempotent: safe to retry.
            self._http.request(
                "record_outcome", "PATCH", path, json={"Status": self.status_values.get(status, status)}, idempotent=True
            )
        except ConnectorNotFound as exc:
            raise CaseNotFound(f"case {case_id} no longer exists in Salesforce") from exc
        if comment:
            # A comment is a new record: a POST Salesforce cannot deduplicate, so it is not
            # retried after a timeout or a 5xx (a duplicate comment is worse than a clear error).
            self._http.request(
                "record_outcome comment",
                "POST",
                f"{self._data_path}/sobjects/CaseComment",
                json={"ParentId": record_id, "CommentBody": comment[:4000], "IsPublished": False},
                idempotent=False,
            )
