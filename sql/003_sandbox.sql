-- State of the sandbox payment and billing providers: the refunds and credits the platform made
-- against the bundled world. A real provider (Stripe, Zuora) keeps this on its side; the sandbox
-- keeps it here so that tests can count money movements and retries can be recognised.

CREATE TABLE sandbox_refunds (
    refund_id       VARCHAR(64) PRIMARY KEY,
    charge_id       VARCHAR(64) NOT NULL,
    customer_id     VARCHAR(64) NOT NULL,
    amount          NUMERIC(14, 2) NOT NULL CHECK (amount > 0),
    currency        CHAR(3) NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL UNIQUE,
    reason          TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_sandbox_refunds_charge ON sandbox_refunds (charge_id);

CREATE TABLE sandbox_credits (
    credit_id       VARCHAR(64) PRIMARY KEY,
    customer_id     VARCHAR(64) NOT NULL,
    amount          NUMERIC(14, 2) NOT NULL CHECK (amount > 0),
    currency        CHAR(3) NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL UNIQUE,
    reason          TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_sandbox_credits_customer ON sandbox_credits (customer_id);
