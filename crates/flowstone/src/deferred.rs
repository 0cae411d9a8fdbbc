//! Deferred commits: the storage writes of one materialization, awaited together at its end.
//!
//! A materialization writes several rows: its running record, its output, its lineage and its
//! final record. No later step of the same materialization reads what an earlier one wrote, so
//! waiting for each commit in turn only adds latency; with a group-commit store (the SQL writer)
//! that is up to four commit rounds per materialization where one would do.
//!
//! So every attempt runs inside a scope ([`scope`]); a store that has queued a write hands the
//! wait for its commit to [`defer`] and returns at once, and the scope awaits every deferred
//! commit before the attempt returns. What callers see does not change: `materialize` (and a
//! queue worker's acknowledgement) still comes only after everything the materialization wrote
//! is committed, and a failed commit still fails the materialization. Outside a scope (a store
//! used directly) `defer` hands the commit back and the store awaits it itself.
//!
//! Custom stores and IO managers may use [`defer`] the same way; the write itself must already
//! be queued in order (a later read by anyone must not overtake it), only the wait is deferred.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use crate::error::Result;

type Commit = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

tokio::task_local! {
    static PENDING: RefCell<Vec<Commit>>;
}

/// Hands `commit` (the wait for an already queued write) to the enclosing materialization, or
/// back to the caller (`Some`) when there is none, to await itself.
pub fn defer<F>(commit: F) -> Option<F>
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    if PENDING.try_with(|_| ()).is_err() {
        return Some(commit);
    }
    PENDING.with(|pending| pending.borrow_mut().push(Box::pin(commit)));
    None
}

/// Runs `work`, then awaits every commit deferred inside it. A failed commit wins over the
/// work's own result: the caller must learn that something it was told about is not stored.
pub(crate) async fn scope<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    let (result, pending) = PENDING
        .scope(RefCell::new(Vec::new()), async {
            let result = work.await;
            let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
            (result, pending)
        })
        .await;
    let mut failed = None;
    for commit in pending {
        if let Err(err) = commit.await {
            failed.get_or_insert(err);
        }
    }
    match failed {
        Some(err) => Err(err),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::error::Error;

    #[tokio::test]
    async fn outside_a_scope_the_commit_comes_back() {
        assert!(defer(async { Ok(()) }).is_some());
    }

    #[tokio::test]
    async fn a_scope_awaits_its_commits_and_reports_a_failed_one() {
        let awaited = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&awaited);
        let result = scope(async move {
            let later = async move {
                seen.store(true, Ordering::SeqCst);
                Ok(())
            };
            assert!(defer(later).is_none());
            assert!(defer(async { Err(Error::store("disk full")) }).is_none());
            Ok::<_, Error>(5)
        })
        .await;
        assert!(awaited.load(Ordering::SeqCst));
        assert!(result.unwrap_err().to_string().contains("disk full"));
    }

    #[tokio::test]
    async fn a_scope_without_failures_returns_the_work_result() {
        let result = scope(async {
            assert!(defer(async { Ok(()) }).is_none());
            Ok::<_, Error>(5)
        })
        .await;
        assert_eq!(result.unwrap(), 5);
    }
}
