//! flowstone-queue: a durable job queue. (The queue helper fills this crate.)
