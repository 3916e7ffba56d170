//! One writer thread owns the write connection and commits in groups: it
//! takes the first waiting job, drains whatever else is queued (up to a
//! batch), runs each inside its own savepoint, commits once, and only then
//! answers every caller and publishes their events. One fsync serves many
//! messages; a failing job rolls back alone.

use crate::crypt::Crypto;
use careline_core::event::{Event, NewEvent};
use careline_core::ids::OrgId;
use careline_core::{Error, Result};
use careline_store::Bus;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// Most jobs committed together.
const MAX_BATCH: usize = 512;

/// Most writes that may wait for the writer. Past it a write is refused at
/// once as unavailable (HTTP 503, try again), with nothing recorded, instead
/// of queueing without bound while the disk falls behind: the same bound and
/// answer as PostgreSQL's group commit gives each organization.
pub const QUEUE_LIMIT: usize = 4_096;

/// A write connection inside an open transaction, plus the events the job
/// appended (published only after commit).
pub struct Tx<'c> {
    pub conn: &'c Connection,
    /// Seals and opens PHI for this transaction's rows.
    pub crypto: &'c Crypto,
    events: RefCell<Vec<Event>>,
}

impl Tx<'_> {
    /// Append events to the organization's chain, in order.
    pub fn append(&self, org: OrgId, at: Timestamp, new: Vec<NewEvent>) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let org_s = org.to_string();
        let head: Option<(i64, String)> = self
            .conn
            .prepare_cached("SELECT seq, hash FROM chain_heads WHERE org_id = $1")
            .and_then(|mut s| {
                s.query_row([&org_s], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(Error::internal)?;
        let (mut seq, mut prev) =
            head.unwrap_or((0, careline_core::event::GENESIS_HASH.to_owned()));
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO events (id, org_id, seq, at, kind, actor_id, member_id, ticket_id, thread_id, team_id, payload, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .map_err(Error::internal)?;
        let hooks: Vec<(String, Vec<String>)> = self
            .conn
            .prepare_cached("SELECT id, events FROM webhooks WHERE org_id = $1 AND active = 1")
            .and_then(|mut s| {
                s.query_map([&org_s], |r| {
                    let ev: String = r.get(1)?;
                    Ok((r.get(0)?, careline_store::subscriptions(&ev)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(Error::internal)?;
        let mut out = self.events.borrow_mut();
        for n in new {
            seq += 1;
            let e = Event::seal(org, seq, &prev, at, n);
            stmt.execute(params![
                e.id.to_string(),
                org_s,
                e.seq,
                e.at_us,
                e.kind,
                e.actor_id.map(|x| x.to_string()),
                e.member_id.map(|x| x.to_string()),
                e.ticket_id.map(|x| x.to_string()),
                e.thread_id.map(|x| x.to_string()),
                e.team_id.map(|x| x.to_string()),
                e.payload,
                e.prev_hash,
                e.hash,
            ])
            .map_err(Error::internal)?;
            prev.clone_from(&e.hash);
            for (hook, kinds) in &hooks {
                if kinds.iter().any(|k| subscribed(k, &e.kind)) {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO deliveries (id, org_id, webhook_id, event_id, event_kind, body, status, attempts, next_attempt_at, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                careline_core::ids::DeliveryId::new().to_string(),
                                org_s,
                                hook,
                                e.id.to_string(),
                                e.kind,
                                e.public_json().to_string(),
                                e.at_us,
                            ])
                        })
                        .map_err(Error::internal)?;
                }
            }
            out.push(e);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO chain_heads (org_id, seq, hash) VALUES ($1, $2, $3)
                 ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            )
            .and_then(|mut s| s.execute(params![org_s, seq, prev]))
            .map_err(Error::internal)?;
        Ok(())
    }
}

/// Whether a webhook subscribed to `pattern` ("page.created", "page.*" or "*") gets `kind`.
pub fn subscribed(pattern: &str, kind: &str) -> bool {
    pattern == "*"
        || pattern == kind
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| kind.starts_with(prefix))
}

struct Finished {
    ok: bool,
    events: Vec<Event>,
    answer: Box<dyn FnOnce(Result<()>) + Send>,
}

type Job = Box<dyn FnOnce(&Connection, &Crypto) -> Finished + Send>;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::SyncSender<Job>,
}

impl Writer {
    /// Start the writer thread on `conn`.
    pub fn start(conn: Connection, bus: Bus, crypto: Arc<Crypto>) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_LIMIT);
        std::thread::Builder::new()
            .name("careline-sqlite-writer".into())
            .spawn(move || run(conn, rx, bus, crypto))?;
        Ok(Writer { jobs: tx })
    }

    /// Run `f` in the next group commit and return its result after commit.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn, crypto| {
            let t = Tx {
                conn,
                crypto,
                events: RefCell::new(Vec::new()),
            };
            let result = catch_unwind(AssertUnwindSafe(|| f(&t)))
                .unwrap_or_else(|_| Err(Error::internal("a write job panicked")));
            let ok = result.is_ok();
            let events = if ok {
                t.events.into_inner()
            } else {
                Vec::new()
            };
            Finished {
                ok,
                events,
                answer: Box::new(move |committed: Result<()>| {
                    let _ = tx.send(committed.and(result));
                }),
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Error::Unavailable(format!(
                "{QUEUE_LIMIT} writes are already waiting for the database: try again shortly"
            )),
            mpsc::TrySendError::Disconnected(_) => {
                Error::Unavailable("the store is shutting down".into())
            }
        })?;
        rx.await
            .map_err(|_| Error::Unavailable("the store writer stopped".into()))?
    }
}

/// Run a statement through the statement cache (savepoints run for every job).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Largest WAL file before the writer truncates it between two groups.
const WAL_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// Under sustained writes the background PASSIVE checkpoints may never catch
/// up; the writer, which holds no transaction between groups, then truncates
/// the WAL itself. Rare and bounded: most pages were already copied back.
fn bound_wal(conn: &Connection, wal_path: &std::path::Path) {
    let big = std::fs::metadata(wal_path)
        .map(|m| m.len() > WAL_LIMIT_BYTES)
        .unwrap_or(false);
    if big && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL truncate checkpoint failed");
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, bus: Bus, crypto: Arc<Crypto>) {
    let wal_path = std::path::PathBuf::from(format!("{}-wal", conn.path().unwrap_or_default()));
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "could not begin a write transaction");
            for job in jobs {
                // Run nothing; answer with the failure. The job's closure is
                // dropped unrun, which drops its sender: the caller sees Unavailable.
                drop(job);
            }
            continue;
        }
        let mut done = Vec::with_capacity(jobs.len());
        for job in jobs {
            if exec(&conn, "SAVEPOINT job").is_err() {
                done.push(Finished {
                    ok: false,
                    events: vec![],
                    answer: Box::new(|_| {}),
                });
                continue;
            }
            let fin = job(&conn, &crypto);
            let end = if fin.ok {
                exec(&conn, "RELEASE job")
            } else {
                exec(&conn, "ROLLBACK TO job").and_then(|()| exec(&conn, "RELEASE job"))
            };
            if let Err(e) = end {
                tracing::error!(error = %e, "savepoint end failed");
            }
            done.push(fin);
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                for fin in done {
                    if fin.ok {
                        bus.publish(fin.events);
                    }
                    (fin.answer)(Ok(()));
                }
                bound_wal(&conn, &wal_path);
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; every job in it is refused");
                let _ = conn.execute_batch("ROLLBACK");
                for fin in done {
                    (fin.answer)(Err(Error::internal(format!("commit failed: {e}"))));
                }
            }
        }
    }
    tracing::debug!("store writer stopped");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    /// Poll a future once: a write that was queued stays pending.
    async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
    }

    #[tokio::test]
    async fn a_full_write_queue_refuses_at_once_and_every_accepted_write_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER NOT NULL)")
            .unwrap();
        let crypto = Arc::new(Crypto::new(careline_crypto::MasterKey::from_bytes([7; 32])));
        let w = Writer::start(conn, Bus::default(), crypto).unwrap();

        // The writer is held busy inside a job it has already taken.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let mut busy = Box::pin(w.write(move |_| {
            started_tx.send(()).unwrap();
            held.recv().unwrap();
            Ok(())
        }));
        assert!(poll_once(&mut busy).await.is_pending());
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();

        let mut queued = Vec::new();
        for n in 0..QUEUE_LIMIT as i64 {
            let mut f = Box::pin(w.write(move |tx| {
                tx.conn
                    .execute("INSERT INTO t (n) VALUES (?1)", [n])
                    .map_err(Error::internal)?;
                Ok(n)
            }));
            assert!(poll_once(&mut f).await.is_pending(), "write {n} was queued");
            queued.push(f);
        }
        let mut over = Box::pin(w.write(|tx| {
            tx.conn
                .execute("INSERT INTO t (n) VALUES (-1)", [])
                .map_err(Error::internal)?;
            Ok(-1)
        }));
        match poll_once(&mut over).await {
            Poll::Ready(Err(Error::Unavailable(why))) => {
                assert!(why.contains("4096 writes are already waiting"), "{why}");
            }
            other => panic!("the write past the bound was not refused at once: {other:?}"),
        }

        release.send(()).unwrap();
        busy.await.unwrap();
        for (n, f) in queued.into_iter().enumerate() {
            assert_eq!(f.await.unwrap(), n as i64);
        }
        let check = Connection::open(&path).unwrap();
        let (rows, distinct, refused): (i64, i64, i64) = check
            .query_row(
                "SELECT COUNT(*), COUNT(DISTINCT n), COUNT(*) FILTER (WHERE n < 0) FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (rows, distinct, refused),
            (QUEUE_LIMIT as i64, QUEUE_LIMIT as i64, 0)
        );
    }
}
