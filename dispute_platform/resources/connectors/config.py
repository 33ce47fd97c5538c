"""Which CRM, billing and payments implementation runs: the environment decides, here, once.

A connector is used when its variables are set; with none of them, the sandbox provider. A
connector that is only partly configured (an instance URL without a token, say) is an error, not
a silent fall-back to the sandbox: the platform would otherwise resolve real disputes against
invented data. Secrets reach the resources as `dagster.EnvVar`s, so they are read in the run
process and never shown in the Dagster UI.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from dagster import ConfigurableResource, EnvVar
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispute_platform.resources.connectors.salesforce import SalesforceCRM
from dispute_platform.resources.connectors.stripe_payments import StripePayments
from dispute_platform.resources.connectors.zuora import ZuoraBilling
from dispute_platform.resources.providers import (
    SandboxBilling,
    SandboxCRM,
    SandboxPayments,
)


class ConnectorConfigurationError(ValueError):
    """A connector is half-configured; the message says which variables are missing."""


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ConnectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True)

    # --- Salesforce (CRM) ---------------------------------------------------------------------
    salesforce_instance_url: str | None = Field(
        default=None,
        validation_alias=_alias("SALESFORCE_INSTANCE_URL", "CRM_BASE_URL"),
        description="Salesforce instance, e.g. https://yourorg.my.salesforce.com (alias CRM_BASE_URL). Set: the Salesforce CRM.",
    )
    salesforce_access_token: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("SALESFORCE_ACCESS_TOKEN", "CRM_ACCESS_TOKEN"),
        description="OAuth access token (alias CRM_ACCESS_TOKEN); or use the client id and secret.",
    )
    salesforce_client_id: str | None = Field(default=None, description="Connected app consumer key (client-credentials flow).")
    salesforce_client_secret: SecretStr | None = Field(default=None, description="Connected app consumer secret.")
    salesforce_api_version: str = Field(default="v60.0", description="Salesforce REST API version.")
    salesforce_case_id_field: str = Field(
        default="Id", description="Case field holding the platform's case id (Id, CaseNumber, an external id)."
    )
    salesforce_customer_id_field: str = Field(default="Id", description="Account field holding the platform's customer id.")
    salesforce_currency_field: str = Field(
        default="Currency__c", description="Case currency field (Currency__c or CurrencyIsoCode)."
    )
    salesforce_email_field: str | None = Field(
        default=None, description="Account e-mail field (PersonEmail with person accounts)."
    )
    salesforce_incident_object: str | None = Field(default=None, description="Custom object of outages per account; unset: none.")
    # --- Zuora (billing) ----------------------------------------------------------------------
    zuora_base_url: str | None = Field(
        default=None,
        validation_alias=_alias("ZUORA_BASE_URL", "BILLING_BASE_URL"),
        description="Zuora REST endpoint, e.g. https://rest.zuora.com (alias BILLING_BASE_URL). Set: the Zuora billing.",
    )
    zuora_client_id: str | None = Field(default=None, description="Zuora OAuth client id.")
    zuora_client_secret: SecretStr | None = Field(default=None, description="Zuora OAuth client secret.")
    zuora_access_token: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("ZUORA_ACCESS_TOKEN", "BILLING_ACCESS_TOKEN"),
        description="A Zuora bearer token instead of client credentials (alias BILLING_ACCESS_TOKEN).",
    )
    zuora_credit_charge_id: str | None = Field(
        default=None, description="Product rate plan charge id credit memos are made from."
    )
    zuora_credit_reason_code: str | None = Field(default=None, description="Reason code for credit memos.")
    zuora_version: str | None = Field(default=None, description="Zuora-Version header.")
    # --- Stripe (payments) --------------------------------------------------------------------
    stripe_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("STRIPE_SECRET_KEY", "PAYMENT_SECRET_KEY"),
        description="Stripe secret or restricted key (alias PAYMENT_SECRET_KEY). Set: Stripe payments.",
    )
    stripe_api_base: str | None = Field(default=None, description="Stripe API base URL; unset: https://api.stripe.com.")
    stripe_customer_lookup: Literal["metadata", "id"] = Field(
        default="metadata", description="metadata: customers carry the platform's id in metadata; id: it is the cus_ id."
    )
    stripe_customer_metadata_key: str = Field(
        default="customer_id", description="Stripe customer metadata key of the platform's id."
    )
    # --- all connectors -----------------------------------------------------------------------
    connector_timeout_seconds: float = Field(default=20.0, gt=0, description="Per-request timeout of the connectors.")
    connector_max_attempts: int = Field(default=4, ge=1, le=10, description="Attempts per request where a retry is safe.")
    connector_backoff_base_seconds: float = Field(default=0.5, ge=0, description="First retry wait; doubles per retry.")


def _env_name(field: str, settings: ConnectorSettings) -> str:
    """The environment variable a setting was read from, for `EnvVar`: the run process must
    find the secret under the same name."""
    info = ConnectorSettings.model_fields[field]
    alias = info.validation_alias
    names = list(alias.choices) if isinstance(alias, AliasChoices) else [field.upper()]
    present = {key.upper(): key for key in os.environ}
    for name in names:
        if name.upper() in present:
            return present[name.upper()]
    raise ConnectorConfigurationError(
        f"{names[0]} is set in the settings but not in the process environment; Dagster reads secrets from "
        f"the environment of each run (EnvVar), so export {names[0]}"
    )


def _secret(field: str, settings: ConnectorSettings) -> Any:
    return EnvVar(_env_name(field, settings)) if getattr(settings, field) is not None else None


def _retry_kwargs(settings: ConnectorSettings) -> dict[str, Any]:
    return {
        "timeout_seconds": settings.connector_timeout_seconds,
        "max_attempts": settings.connector_max_attempts,
        "backoff_base_seconds": settings.connector_backoff_base_seconds,
    }


def _crm(settings: ConnectorSettings, sandbox: dict[str, Any]) -> ConfigurableResource:
    url = settings.salesforce_instance_url
    token = settings.salesforce_access_token
    client_id, client_secret = settings.salesforce_client_id, settings.salesforce_client_secret
    if not (url or token or client_id or client_secret):
        return SandboxCRM(**sandbox)
    if bool(client_id) != bool(client_secret):
        raise ConnectorConfigurationError("Salesforce: set both SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET, or neither")
    if not url:
        raise ConnectorConfigurationError("Salesforce credentials are set but SALESFORCE_INSTANCE_URL (or CRM_BASE_URL) is not")
    if not (token or client_id):
        raise ConnectorConfigurationError(
            "SALESFORCE_INSTANCE_URL is set but neither SALESFORCE_ACCESS_TOKEN (or CRM_ACCESS_TOKEN) nor "
            "SALESFORCE_CLIENT_ID/SALESFORCE_CLIENT_SECRET is"
        )
    return SalesforceCRM(
        instance_url=url,
        access_token=_secret("salesforce_access_token", settings),
        client_id=client_id,
        client_secret=_secret("salesforce_client_secret", settings),
        api_version=settings.salesforce_api_version,
        case_id_field=settings.salesforce_case_id_field,
        customer_id_field=settings.salesforce_customer_id_field,
        currency_field=settings.salesforce_currency_field,
        email_field=settings.salesforce_email_field,
        incident_object=settings.salesforce_incident_object,
        **_retry_kwargs(settings),
    )


def _billing(settings: ConnectorSettings, sandbox: dict[str, Any]) -> ConfigurableResource:
    url = settings.zuora_base_url
    client_id, client_secret, token = settings.zuora_client_id, settings.zuora_client_secret, settings.zuora_access_token
    if not (url or client_id or client_secret or token):
        return SandboxBilling(**sandbox)
    if bool(client_id) != bool(client_secret):
        raise ConnectorConfigurationError("Zuora: set both ZUORA_CLIENT_ID and ZUORA_CLIENT_SECRET, or neither")
    if not url:
        raise ConnectorConfigurationError("Zuora credentials are set but ZUORA_BASE_URL (or BILLING_BASE_URL) is not")
    if not (client_id or token):
        raise ConnectorConfigurationError(
            "ZUORA_BASE_URL is set but neither ZUORA_CLIENT_ID/ZUORA_CLIENT_SECRET nor ZUORA_ACCESS_TOKEN (or BILLING_ACCESS_TOKEN) is"
        )
    return ZuoraBilling(
        base_url=url,
        client_id=client_id,
        client_secret=_secret("zuora_client_secret", settings),
        access_token=None if client_id else _secret("zuora_access_token", settings),
        credit_charge_id=settings.zuora_credit_charge_id,
        credit_reason_code=settings.zuora_credit_reason_code,
        zuora_version=settings.zuora_version,
        **_retry_kwargs(settings),
    )


def _payments(settings: ConnectorSettings, sandbox: dict[str, Any]) -> ConfigurableResource:
    key = settings.stripe_secret_key
    if key is None:
        if settings.stripe_api_base:
            raise ConnectorConfigurationError("STRIPE_API_BASE is set but STRIPE_SECRET_KEY (or PAYMENT_SECRET_KEY) is not")
        return SandboxPayments(**sandbox)
    if not key.get_secret_value().startswith(("sk_", "rk_")):
        raise ConnectorConfigurationError(
            "STRIPE_SECRET_KEY must be a secret (sk_...) or restricted (rk_...) key, not a publishable one"
        )
    return StripePayments(
        secret_key=_secret("stripe_secret_key", settings),
        api_base=settings.stripe_api_base,
        customer_lookup=settings.stripe_customer_lookup,
        customer_metadata_key=settings.stripe_customer_metadata_key,
        **_retry_kwargs(settings),
    )


def select_providers(settings: ConnectorSettings, sandbox: dict[str, Any]) -> dict[str, ConfigurableResource]:
    """{"crm", "billing", "payments"}: each the real connector when its variables are set,
    otherwise the sandbox provider built from `sandbox` (the kwargs SandboxCRM(**sandbox) takes).
    Raises ConnectorConfigurationError for a connector that is only partly configured."""
    return {
        "crm": _crm(settings, sandbox),
        "billing": _billing(settings, sandbox),
        "payments": _payments(settings, sandbox),
    }
