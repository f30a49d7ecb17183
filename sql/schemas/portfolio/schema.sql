-- portfolio baseline: portfolios, their holdings and the transactions that produced them.
-- Applied once, as ledger version 0, in one transaction, as portfolio_owner with search_path = <schema>, public.
-- owner_user_id refers to auth.users.id in ANOTHER database: services share no foreign keys (ADR-015).

CREATE TABLE portfolios (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_user_id bigint      NOT NULL,
    name          text        NOT NULL,
    base_currency char(3)     NOT NULL DEFAULT 'USD' CHECK (base_currency ~ '^[A-Z]{3}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_user_id, name)
);

CREATE TABLE holdings (
    portfolio_id bigint        NOT NULL REFERENCES portfolios (id) ON DELETE CASCADE,
    symbol       text          NOT NULL,
    quantity     numeric(20,8) NOT NULL CHECK (quantity >= 0),
    average_cost numeric(20,8) NOT NULL CHECK (average_cost >= 0),
    PRIMARY KEY (portfolio_id, symbol)
);

CREATE TABLE transactions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    portfolio_id bigint        NOT NULL REFERENCES portfolios (id) ON DELETE CASCADE,
    symbol       text          NOT NULL,
    side         text          NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity     numeric(20,8) NOT NULL CHECK (quantity > 0),
    price        numeric(20,8) NOT NULL CHECK (price >= 0),
    fee          numeric(20,8) NOT NULL DEFAULT 0,
    executed_at  timestamptz   NOT NULL DEFAULT now()
);
