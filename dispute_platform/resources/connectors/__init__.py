"""Real connectors behind the provider protocols: Salesforce (CRM), Zuora (billing) and Stripe
(payments). `config.select_providers` chooses them, or the sandbox, from the environment."""
