-- The transaction history screen lists one portfolio's transactions, newest first.
CREATE INDEX transactions_portfolio_executed_idx ON transactions (portfolio_id, executed_at DESC);
