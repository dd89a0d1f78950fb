"""The single writer: every change validates its values, writes, and queues its config events in one
transaction. Callers own the transaction (`with conn.transaction():`); nothing here commits."""
