//! Recomputing the hash chains inside one snapshot: `verify_chains` runs it
//! in a `REPEATABLE READ` transaction of its own, and a backup runs it in the
//! transaction whose snapshot `pg_dump` copies, so what is verified is
//! exactly what is dumped. Appends committed meanwhile neither tear the walk
//! nor disagree with the heads it compares against.

use crate::rows::{self, db, q};
use careline_core::Result;
use careline_core::event::ChainVerifier;
use careline_core::ids::OrgId;
use careline_store::ChainReport;
use sqlx_postgres::{PgConnection, PgPool};
use uuid::Uuid;

/// Events read per round trip while verifying a chain.
const VERIFY_BATCH: i64 = 5_000;

/// Every organization's chain, in one read-only snapshot of its own.
pub async fn verify_all(pool: &PgPool) -> Result<Vec<ChainReport>> {
    let mut tx = pool.begin().await.map_err(db)?;
    q("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let reports = verify_in(&mut tx).await?;
    tx.rollback().await.map_err(db)?;
    Ok(reports)
}

/// Every organization's chain (and every chain of events whose organization
/// is gone), in the caller's transaction: its snapshot is what is verified.
pub async fn verify_in(c: &mut PgConnection) -> Result<Vec<ChainReport>> {
    let orgs: Vec<(Uuid, String)> = sqlx_core::query_as::query_as(
        "SELECT id, name FROM organizations
         UNION SELECT DISTINCT e.org_id, '(unknown organization)' FROM events e
               WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = e.org_id)
         ORDER BY 2",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db)?;
    let mut out = Vec::with_capacity(orgs.len());
    for (org, name) in orgs {
        out.push(verify_one(c, OrgId(org), name).await?);
    }
    Ok(out)
}

/// Recompute one organization's chain, in batches, and compare its end with
/// the recorded head.
async fn verify_one(c: &mut PgConnection, org: OrgId, name: String) -> Result<ChainReport> {
    let mut v = ChainVerifier::default();
    let mut error = None;
    let mut after = 0_i64;
    'walk: loop {
        let batch = q("SELECT * FROM events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(org.0)
            .bind(after)
            .bind(VERIFY_BATCH)
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            match rows::event(r) {
                Ok(e) => {
                    after = e.seq;
                    if let Err(err) = v.check(&e) {
                        error = Some(err.to_string());
                        break 'walk;
                    }
                }
                Err(e) => {
                    error = Some(format!("event after seq {} cannot be read: {e}", v.count()));
                    break 'walk;
                }
            }
        }
    }
    if error.is_none() {
        let head: Option<(i64, String)> =
            sqlx_core::query_as::query_as("SELECT seq, hash FROM chain_heads WHERE org_id = $1")
                .bind(org.0)
                .fetch_optional(&mut *c)
                .await
                .map_err(db)?;
        // A head at the genesis (seq 0) is the same as none.
        let head = head.filter(|(seq, _)| *seq > 0);
        if let Err(err) = v.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))) {
            error = Some(err.to_string());
        }
    }
    Ok(ChainReport {
        org_id: org,
        org_name: name,
        events: v.count(),
        last_hash: v.last_hash().to_owned(),
        error,
    })
}
