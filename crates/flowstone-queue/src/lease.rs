//! Leader leases: a row `flowstone_leases(name, holder, expires_at)` that names the one node
//! allowed to do a duty that must not run on several nodes at once (pruning, rescue,
//! retention, automation). The holder renews its lease before it expires; when it stops
//! renewing (it died, or lost the database), another node takes the lease over once it has
//! expired; a holder that stops on purpose releases it, handing it over at once.
//!
//! Taking and renewing are one statement (an upsert that only overwrites a row held by the
//! same holder or expired), so two nodes racing for a free lease cannot both win. Expiry is
//! measured by the database's clock on PostgreSQL (nodes' clocks may differ) and by this
//! host's on SQLite (all its processes share one host).
//!
//! A lease is advisory: a holder that stalls past its expiry may still be finishing a round
//! of its duty while the next holder starts one, so leader duties must be safe to repeat.
//!
//! Workers hold [`MAINTENANCE_LEASE`] for their own single-node duties and for those the
//! application registers with [`WorkerBuilder::leader_duty`](crate::WorkerBuilder::leader_duty).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::database::Database;
use crate::engine::by_engine;
#[cfg(feature = "postgres")]
use crate::engine::postgres;
#[cfg(feature = "sqlite")]
use crate::engine::sqlite;
use crate::error::{Error, Result};

/// The lease a worker holds while it runs the single-node duties: pruning of finished rows,
/// rescue of dead nodes' jobs, and the application's leader duties.
pub const MAINTENANCE_LEASE: &str = "flowstone.maintenance";

/// Who holds a lease, and until when unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The holder's name (for workers, the node name).
    pub holder: String,
    /// When the lease lapses if its holder does not renew it.
    pub expires_at: DateTime<Utc>,
}

/// Takes the lease `name` for `holder` for `ttl` if it is free or expired, or renews it for
/// `ttl` from now if `holder` already holds it. Returns whether `holder` holds it now.
pub async fn acquire(db: &Database, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
    check_ttl(name, ttl)?;
    by_engine!(db.pool(), p => {
        sqlite: {
            let mut c = p.acquire().await?;
            let _gate = db.write_gate().await;
            sqlite::acquire_lease(&mut c, name, holder, ttl).await
        },
        postgres: postgres::acquire_lease(p, name, holder, ttl).await,
    })
}

/// Gives the lease `name` up if `holder` holds it, so another node can take it at once.
/// Returns whether it was held by `holder` (an expired lease still counts: nobody took it).
pub async fn release(db: &Database, name: &str, holder: &str) -> Result<bool> {
    by_engine!(db.pool(), p => {
        sqlite: {
            let mut c = p.acquire().await?;
            let _gate = db.write_gate().await;
            sqlite::release_lease(&mut c, name, holder).await
        },
        postgres: postgres::release_lease(p, name, holder).await,
    })
}

/// Who holds the lease `name` now; `None` when nobody does (never taken, released, or
/// expired).
pub async fn holder(db: &Database, name: &str) -> Result<Option<LeaseHolder>> {
    let row = by_engine!(db.pool(), p => {
        sqlite: sqlite::lease_holder(p, name).await?,
        postgres: postgres::lease_holder(p, name).await?,
    });
    Ok(row.map(|(holder, expires_us)| LeaseHolder {
        holder,
        expires_at: DateTime::from_timestamp_micros(expires_us).unwrap_or(DateTime::<Utc>::MAX_UTC),
    }))
}

/// A zero TTL would make every lease expire as it is taken: two holders could both win.
fn check_ttl(name: &str, ttl: Duration) -> Result<()> {
    if ttl.is_zero() {
        return Err(Error::InvalidConfig(format!(
            "lease `{name}` asked for with a TTL of zero: use a positive duration"
        )));
    }
    Ok(())
}
