//! Keyed bulkheads (per user, per tenant): see [`KeyedBulkhead`].
