//! Group commit: one organization's writes share transactions.
//!
//! Every write of a tenant holds that tenant's chain lock until it commits
//! (see `tx.rs`), so one at a time they are bounded by a commit — a round
//! trip and a WAL flush — each. Here a committer task per organization
//! takes the first queued write and whatever else queued behind it, runs
//! them one after another in one transaction under one chain lock, each in
//! its own savepoint so a failing write rolls back alone, and commits once.
//! Only then does each caller get its answer, and the events go out on the
//! bus: nothing is acknowledged before it is durable. Writes from several
//! nodes still meet at the chain lock, batch by batch.

use crate::tx::{Mark, Tx};
use careline_core::ids::OrgId;
use careline_core::{Error, Result};
use careline_store::Bus;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx_postgres::PgPool;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most writes committed together. Every write runs in a savepoint, and a
/// transaction that writes in more than 64 subtransactions overflows
/// PostgreSQL's per-backend cache of them, which slows every other
/// session's snapshots; 64 writes already share one commit.
const MAX_BATCH: usize = 64;

/// Most writes one organization may have waiting on this node. Past it a
/// write is refused at once as unavailable (HTTP 503, try again) instead of
/// queueing without bound while the database falls behind.
pub const QUEUE_LIMIT: usize = 4_096;

type Run = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<()>> + Send>;

struct Job {
    run: Run,
    done: oneshot::Sender<Result<()>>,
}

/// The per-organization queues of one store.
pub(crate) struct Groups {
    pool: PgPool,
    node: Uuid,
    bus: Bus,
    queues: Mutex<HashMap<OrgId, mpsc::Sender<Job>>>,
}

impl Groups {
    pub fn new(pool: PgPool, node: Uuid, bus: Bus) -> Groups {
        Groups {
            pool,
            node,
            bus,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Run `write` in `org`'s next group transaction (which already holds
    /// the chain lock) and return its result once that transaction has
    /// committed. A write that fails is rolled back alone; if the commit
    /// fails, every write in the group fails with it. A write must not
    /// itself call `write` for the same organization: it would wait for the
    /// committer that is running it.
    pub async fn write<T, F>(&self, org: OrgId, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let run: Run = Box::new(move |tx: &mut Tx| {
            async move {
                let value = write(tx).await?;
                *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
                Ok(())
            }
            .boxed()
        });
        let (done, answer) = oneshot::channel();
        self.queue(org)
            .try_send(Job { run, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Unavailable(format!(
                    "{QUEUE_LIMIT} writes of this organization are already waiting on this node: try again shortly"
                )),
                mpsc::error::TrySendError::Closed(_) => {
                    Error::Unavailable("the store is shutting down".into())
                }
            })?;
        answer
            .await
            .map_err(|_| Error::internal("a group commit ended without an answer"))??;
        let value = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        value.ok_or_else(|| Error::internal("a committed write left no result"))
    }

    fn queue(&self, org: OrgId) -> mpsc::Sender<Job> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = queues.get(&org).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE_LIMIT);
        // Not background work of the app: the committer is part of the
        // write path, answers every write it took before it ends, and ends
        // when the store is dropped. A write in a task of its own is not
        // cancelled with the request that queued it, which would roll back
        // the other writes of its group.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(committer(
            self.pool.clone(),
            self.node,
            self.bus.clone(),
            org,
            rx,
        ));
        queues.insert(org, tx.clone());
        tx
    }
}

/// One organization's committer: runs until the store is dropped.
async fn committer(pool: PgPool, node: Uuid, bus: Bus, org: OrgId, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&pool, node, &bus, org, &mut batch).await;
    }
}

async fn commit_batch(pool: &PgPool, node: Uuid, bus: &Bus, org: OrgId, batch: &mut Vec<Job>) {
    let mut tx = match begin(pool, node, org).await {
        Ok(tx) => tx,
        Err(e) => {
            for job in batch.drain(..) {
                let _ = job.done.send(Err(copy(&e)));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut mark: Option<Mark> = None;
    let mut broken: Option<Error> = None;
    for job in batch.drain(..) {
        if let Some(e) = &broken {
            let _ = job.done.send(Err(copy(e)));
            continue;
        }
        let m = match tx.savepoint(mark.take()).await {
            Ok(m) => m,
            Err(e) => {
                let _ = job.done.send(Err(copy(&e)));
                broken = Some(e);
                continue;
            }
        };
        let result = AssertUnwindSafe((job.run)(&mut tx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Error::internal("a write panicked")));
        match result {
            Ok(()) => mark = Some(m),
            Err(e) => {
                if let Err(undo) = tx.rollback_to(m).await {
                    broken = Some(undo);
                }
                let _ = job.done.send(Err(e));
                continue;
            }
        }
        answers.push(job.done);
    }
    let committed = match broken {
        Some(e) => Err(e),
        None => tx.commit(bus).await,
    };
    for done in answers {
        let _ = done.send(match &committed {
            Ok(()) => Ok(()),
            Err(e) => Err(copy(e)),
        });
    }
}

async fn begin(pool: &PgPool, node: Uuid, org: OrgId) -> Result<Tx> {
    let t = pool
        .begin()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot begin a transaction: {e}")))?;
    let mut tx = Tx::new(t, node);
    tx.lock_chain(org).await?;
    Ok(tx)
}

/// The same failure for every write of a group that shares it.
fn copy(e: &Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        other => Error::internal(other),
    }
}
