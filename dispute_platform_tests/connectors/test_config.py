"""select_providers: the environment alone chooses each provider; half a configuration is an error."""

from __future__ import annotations

import pytest
from dagster import EnvVar

from dispute_platform.resources.connectors.config import ConnectorConfigurationError, ConnectorSettings, select_providers
from dispute_platform.resources.connectors.salesforce import SalesforceCRM
from dispute_platform.resources.connectors.stripe_payments import StripePayments
from dispute_platform.resources.connectors.zuora import ZuoraBilling
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.providers import SandboxBilling, SandboxCRM, SandboxPayments

VARIABLES = [
    name
    for field, info in ConnectorSettings.model_fields.items()
    for name in (getattr(info.validation_alias, "choices", None) or [field.upper()])
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> dict:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return select_providers(ConnectorSettings(), SANDBOX)

    return set_env


SANDBOX = {"sandbox_data": None, "postgres": PostgresResource(pgdata="never-started")}


def test_nothing_configured_means_the_sandbox(env) -> None:
    providers = env()
    assert isinstance(providers["crm"], SandboxCRM)
    assert isinstance(providers["billing"], SandboxBilling)
    assert isinstance(providers["payments"], SandboxPayments)
    assert providers["crm"].postgres is SANDBOX["postgres"]


def test_every_connector_from_its_variables_with_secrets_as_env_vars(env) -> None:
    providers = env(
        SALESFORCE_INSTANCE_URL="https://acme.my.salesforce.com",
        SALESFORCE_ACCESS_TOKEN="00D!secret",
        SALESFORCE_API_VERSION="v61.0",
        ZUORA_BASE_URL="https://rest.apisandbox.zuora.com",
        ZUORA_CLIENT_ID="zid",
        ZUORA_CLIENT_SECRET="zsecret",
        ZUORA_CREDIT_CHARGE_ID="8ad097b4909708e001909b41bb085d38",
        STRIPE_SECRET_KEY="sk_test_123",
        STRIPE_API_BASE="http://127.0.0.1:12111",
    )
    crm, billing, payments = providers["crm"], providers["billing"], providers["payments"]
    assert isinstance(crm, SalesforceCRM) and crm.api_version == "v61.0"
    assert crm.access_token == EnvVar("SALESFORCE_ACCESS_TOKEN") and isinstance(crm.access_token, EnvVar)
    assert isinstance(billing, ZuoraBilling) and billing.client_id == "zid"
    assert isinstance(billing.client_secret, EnvVar) and billing.client_secret == "ZUORA_CLIENT_SECRET"
    assert isinstance(payments, StripePayments) and payments.api_base == "http://127.0.0.1:12111"
    assert isinstance(payments.secret_key, EnvVar) and payments.secret_key == "STRIPE_SECRET_KEY"
    # Dagster resolves the EnvVar when it initialises the resource for a run.
    assert payments.process_config_and_initialize().secret_key == "sk_test_123"
    assert "00D!secret" not in repr(crm) and "zsecret" not in repr(billing)


def test_seed_variable_names_are_accepted_and_kept_for_env_var(env) -> None:
    providers = env(
        CRM_BASE_URL="https://acme.my.salesforce.com",
        CRM_ACCESS_TOKEN="tok",
        BILLING_BASE_URL="https://rest.zuora.com",
        BILLING_ACCESS_TOKEN="ztok",
        PAYMENT_SECRET_KEY="rk_live_abc",
    )
    assert isinstance(providers["crm"], SalesforceCRM) and providers["crm"].access_token == "CRM_ACCESS_TOKEN"
    assert isinstance(providers["billing"], ZuoraBilling) and providers["billing"].access_token == "BILLING_ACCESS_TOKEN"
    assert providers["payments"].secret_key == "PAYMENT_SECRET_KEY"


def test_connectors_are_chosen_independently(env) -> None:
    providers = env(STRIPE_SECRET_KEY="sk_test_123")
    assert isinstance(providers["crm"], SandboxCRM) and isinstance(providers["billing"], SandboxBilling)
    assert isinstance(providers["payments"], StripePayments)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com"}, "neither SALESFORCE_ACCESS_TOKEN"),
        ({"SALESFORCE_ACCESS_TOKEN": "tok"}, "SALESFORCE_INSTANCE_URL"),
        ({"SALESFORCE_INSTANCE_URL": "https://x", "SALESFORCE_CLIENT_ID": "id"}, "SALESFORCE_CLIENT_SECRET"),
        ({"ZUORA_BASE_URL": "https://rest.zuora.com"}, "ZUORA_CLIENT_ID"),
        ({"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET": "s"}, "ZUORA_BASE_URL"),
        ({"ZUORA_BASE_URL": "https://rest.zuora.com", "ZUORA_CLIENT_ID": "id"}, "ZUORA_CLIENT_SECRET"),
        ({"STRIPE_API_BASE": "http://127.0.0.1:12111"}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_SECRET_KEY": "pk_test_123"}, "publishable"),
    ],
)
def test_half_configured_connectors_are_errors(env, variables: dict, message: str) -> None:
    with pytest.raises(ConnectorConfigurationError, match=message):
        env(**variables)


def test_secret_given_only_in_code_cannot_become_an_env_var(env) -> None:
    settings = ConnectorSettings(stripe_secret_key="sk_test_123")
    with pytest.raises(ConnectorConfigurationError, match="STRIPE_SECRET_KEY"):
        select_providers(settings, SANDBOX)
