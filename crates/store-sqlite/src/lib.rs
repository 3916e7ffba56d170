//! careline's embedded default store: SQLite in WAL mode inside the data
//! directory. One writer thread commits in groups (see [`writer`]); reads use
//! a small pool of read-only connections on blocking threads.

mod access;
mod attachments;
mod audit;
mod crypt;
mod deep;
mod hooks;
mod proxies;
mod rows;
pub mod schema;
mod search;
mod writer;

use async_trait::async_trait;
use careline_core::authz::{Grant, Principal};
use careline_core::escalation::{self, Page, Rota};
use careline_core::event::{ChainVerifier, Event, NewEvent};
use careline_core::feedback::{self, JudgementMark};
use careline_core::ids::*;
use careline_core::ingest::{self, ContactKind, Existing};
use careline_core::model::*;
use careline_core::reads::{self, PhiRead};
use careline_core::safety::TicketHistory;
use careline_core::settings::OrgSettings;
use careline_core::validate::MessageText;
use careline_core::{Error, Result};
use careline_core::{admin, privacy, session, ticket};
use careline_crypto::MasterKey;
use careline_store::*;
use crypt::Crypto;
use jiff::Timestamp;
use rows::{db, us};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use writer::{Tx, Writer};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "careline.db";

/// The master key file's name inside the data directory (when no other place is configured).
pub const MASTER_KEY_FILE: &str = "master.key";

/// Load the master key from `CARELINE_MASTER_KEY`, or from `key_file` (created
/// if missing). A half-finished rotation leaves `<key_file>.next`: if the
/// current key no longer opens the data keys, the caller tries that one.
pub fn load_master(key_file: &Path) -> Result<MasterKey> {
    let (master, source) = MasterKey::from_env_or_file("CARELINE_MASTER_KEY", key_file, true)
        .map_err(|e| Error::internal(format!("master key: {e}")))?;
    if let careline_crypto::KeySource::Created { path } = &source {
        tracing::warn!(path = %path.display(), "created a new master key; keep it apart from backups of the database, or set CARELINE_MASTER_KEY");
    }
    Ok(master)
}

/// Where a rotation writes the new master key before installing it.
pub fn next_key_file(key_file: &Path) -> PathBuf {
    let mut p = key_file.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// The key file in use: `CARELINE_MASTER_KEY_FILE` if set; else the key
/// file an existing data directory already holds (`<data_dir>/master.key`,
/// where earlier versions created it); else [`default_key_file`], beside the
/// data directory rather than in it.
pub fn key_file(data_dir: &Path) -> PathBuf {
    if let Some(explicit) = std::env::var_os("CARELINE_MASTER_KEY_FILE") {
        return PathBuf::from(explicit);
    }
    let inside = data_dir.join(MASTER_KEY_FILE);
    if inside.exists() {
        return inside;
    }
    default_key_file(data_dir)
}

/// Where a new key file goes by default: `careline-data.key` beside the data
/// directory `careline-data`, so a copy of the directory (a backup, a disk
/// image of the volume) does not carry the key that opens it.
pub fn default_key_file(data_dir: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => {
            let mut file = name.to_owned();
            file.push(".key");
            parent.join(file)
        }
        _ => data_dir.join(MASTER_KEY_FILE),
    }
}

/// Whether `key_file` lies inside `data_dir` (where a copy of the directory
/// would take the key along).
pub fn key_in_data_dir(data_dir: &Path, key_file: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let key_dir = key_file.parent().map(canon).unwrap_or_default();
    key_dir.starts_with(canon(data_dir))
}

/// Says so, once per start, when the master key is read from a file inside
/// the data directory. Such setups keep working (refusing would take a
/// running service down at upgrade); the warning names the fix.
pub fn warn_if_key_in_data_dir(data_dir: &Path, key_file: &Path) {
    if std::env::var_os("CARELINE_MASTER_KEY").is_some() || !key_in_data_dir(data_dir, key_file) {
        return;
    }
    tracing::warn!(
        key_file = %key_file.display(),
        data_dir = %data_dir.display(),
        "the master key file is inside the data directory, so any copy of the directory can be decrypted: move it to another disk or a secret store (for example {}) and set CARELINE_MASTER_KEY_FILE to it, or use CARELINE_MASTER_KEY",
        default_key_file(data_dir).display()
    );
}

/// A session as it stands, and when its user's time-limited grants still
/// in force run out, for a live stream judging its caller again. Numbered
/// parameters, because `$2` is met before `$1`.
const SESSION_FACTS: &str = "SELECT s.expires_at, s.revoked_at, COALESCE(s.last_seen_at, s.created_at) AS seen, u.disabled,
    (SELECT MIN(c.expires_at) FROM collaborators c WHERE c.user_id = s.user_id AND c.revoked_at IS NULL AND c.expires_at > ?2) AS tag_until,
    (SELECT MIN(b.expires_at) FROM break_glass b WHERE b.user_id = s.user_id AND b.expires_at > ?2) AS glass_until,
    (SELECT MIN(x.expires_at) FROM proxies x WHERE x.proxy_user_id = s.user_id AND x.expires_at > ?2) AS proxy_until
  FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1";

/// WAL size (in pages) past which the checkpointer truncates it.
const WAL_LIMIT_FRAMES: i64 = 16_384;

/// Most read connections kept open.
const MAX_IDLE_READERS: usize = 64;

/// The embedded store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    crypto: Arc<Crypto>,
    readers: Arc<Mutex<Vec<Connection>>>,
    bus: Bus,
    /// Tells the checkpointer thread to stop when the store goes away.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// WAL checkpoints run here, off the commit path: the writer never stalls
/// copying pages back into the database file. PASSIVE never blocks writers
/// or readers; under sustained writes it may not catch up, so when the WAL
/// passes `WAL_LIMIT_FRAMES` a TRUNCATE checkpoint briefly holds writers back
/// and bounds the file.
fn start_checkpointer(
    path: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("careline-sqlite-checkpointer".into())
        .spawn(move || {
            let Ok(conn) = open_conn(&path, false) else {
                return;
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(250));
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                }) {
                    Ok((log, done)) if log > WAL_LIMIT_FRAMES && done < log => {
                        if let Err(e) =
                            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                        {
                            tracing::warn!(error = %e, "WAL truncate checkpoint failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
            }
        })?;
    Ok(())
}

fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -16000;",
    )?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

impl SqliteStore {
    /// Open (creating and migrating if needed) the store in `data_dir`, with
    /// the master key from `CARELINE_MASTER_KEY` or the key file (created on
    /// first start) that [`key_file`] names.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        Self::open_with_key_file(data_dir, &key_file(data_dir))
    }

    /// [`SqliteStore::open`] with the master key from `CARELINE_MASTER_KEY`
    /// or `key_file` (created on first start).
    pub fn open_with_key_file(data_dir: &Path, key_file: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let key_file = key_file.to_path_buf();
        warn_if_key_in_data_dir(data_dir, &key_file);
        let master = load_master(&key_file)?;
        match Self::open_with_key(data_dir, master) {
            Err(e)
                if e.to_string().contains("cannot unwrap") && next_key_file(&key_file).exists() =>
            {
                // A rotation committed but did not get to install its new key: finish it.
                let next = next_key_file(&key_file);
                let (master, _) = MasterKey::read_file(&next)
                    .map_err(|e| Error::internal(format!("master key: {e}")))?;
                let store = Self::open_with_key(data_dir, master)?;
                std::fs::rename(&next, &key_file)
                    .map_err(|e| Error::internal(format!("installing {}: {e}", next.display())))?;
                tracing::warn!(path = %key_file.display(), "finished an interrupted master-key rotation");
                Ok(store)
            }
            other => other,
        }
    }

    /// Open with a given master key.
    pub fn open_with_key(data_dir: &Path, master: MasterKey) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_conn(&path, false).map_err(db)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        if mode != "wal" {
            return Err(Error::internal(format!(
                "could not switch {} to WAL (got {mode})",
                path.display()
            )));
        }
        let version = schema::migrate(&mut conn).map_err(db)?;
        if version > schema::latest() {
            return Err(schema_too_new(version.into(), schema::latest().into()));
        }
        let crypto = Arc::new(Crypto::new(master));
        crypto.load(&conn)?;
        // Organizations created before encryption get their data key now.
        let orgs: Vec<String> = {
            let mut s = conn
                .prepare(
                    "SELECT id FROM organizations WHERE id NOT IN (SELECT org_id FROM org_keys)",
                )
                .map_err(db)?;
            s.query_map([], |r| r.get(0))
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?
        };
        for o in orgs {
            let org: OrgId = o
                .parse()
                .map_err(|_| Error::internal("bad organization id"))?;
            crypto.ensure_org_key(&conn, org, 0)?;
        }
        // Member rows from before their fields were sealed are sealed now.
        let sealed = crypt::seal_plain_members(&mut conn, &crypto)?;
        if sealed > 0 {
            tracing::info!(
                members = sealed,
                "sealed the identifiers and health markers of existing members"
            );
        }
        let bus = Bus::default();
        // The writer leaves checkpoints to the checkpointer thread.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(db)?;
        let writer = Writer::start(conn, bus.clone(), crypto.clone()).map_err(Error::internal)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        start_checkpointer(path.clone(), stop.clone()).map_err(Error::internal)?;
        Ok(SqliteStore {
            path,
            writer,
            stop,
            crypto,
            readers: Arc::new(Mutex::new(Vec::new())),
            bus,
        })
    }

    /// Re-wrap every organization's data key under `new` (in one transaction).
    pub async fn rewrap_keys(&self, new: MasterKey) -> Result<usize> {
        let old = self.crypto.master().clone();
        self.write(move |tx| crypt::rewrap_all(tx.conn, &old, &new))
            .await
    }

    /// The id of the master key this store runs with (never the key).
    pub fn master_key_id(&self) -> &str {
        self.crypto.master().id()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent snapshot of the database to `dest` (a file that
    /// must not exist yet) while the store keeps serving — the copy is taken
    /// inside one read transaction — then recomputes every hash chain in the
    /// copy. The copy stays encrypted under the same master key.
    pub async fn backup_to(&self, dest: &Path) -> Result<Vec<ChainReport>> {
        if dest.exists() {
            return Err(Error::invalid(format!("{} already exists", dest.display())));
        }
        let dest = dest.to_owned();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let c = open_conn(&path, true).map_err(db)?;
            let target = dest
                .to_str()
                .ok_or_else(|| Error::invalid("the backup path is not valid UTF-8"))?;
            c.execute("VACUUM INTO $1", [target])
                .map_err(|e| Error::internal(format!("writing the snapshot to {target}: {e}")))?;
            let copy =
                Connection::open_with_flags(&dest, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
            verify_chains_on(&copy)
        })
        .await
        .map_err(|e| Error::internal(format!("backup task failed: {e}")))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Crypto) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let crypto = self.crypto.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&path, true).map_err(db)?,
            };
            let out = f(&conn, &crypto);
            if let Ok(mut p) = pool.lock()
                && p.len() < MAX_IDLE_READERS
            {
                p.push(conn);
            }
            out
        })
        .await
        .map_err(|e| Error::internal(format!("read task failed: {e}")))?
    }

    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.writer.write(f).await
    }
}

/// A staff, member or proxy account, and its event.
fn insert_user(
    tx: &Tx<'_>,
    user: &User,
    password_hash: &str,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<()> {
    tx.conn
        .prepare_cached(
            "INSERT INTO users (id, org_id, username, name, role, member_id, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                user.id.to_string(),
                user.org_id.to_string(),
                user.username,
                user.name,
                user.role.as_str(),
                user.member_id.map(|m| m.to_string()),
                password_hash,
                us(now)
            ])
        })
        .map_err(db)?;
    tx.append(user.org_id, now, vec![admin::user_created(user, actor)])
}

fn settings(c: &Connection, org: OrgId) -> Result<OrgSettings> {
    let settings: Option<String> = c
        .prepare_cached("SELECT settings FROM organizations WHERE id = $1")
        .and_then(|mut s| s.query_row([org.to_string()], |r| r.get(0)).optional())
        .map_err(db)?;
    let settings = settings.ok_or(Error::NotFound("organization"))?;
    serde_json::from_str(&settings)
        .map_err(|e| Error::internal(format!("organization settings: {e}")))
}

fn rota(c: &Connection, team: TeamId) -> Result<Rota> {
    c.prepare_cached("SELECT * FROM rotas WHERE team_id = $1")
        .and_then(|mut s| {
            s.query_row([team.to_string()], |r| {
                let sup: String = r.get("supervisors")?;
                let (supervisors, unreadable) = careline_store::rota_supervisors(&sup);
                Ok(Rota {
                    primary: rows::opt_id(r, "primary_id")?,
                    backup: rows::opt_id(r, "backup_id")?,
                    physician: rows::opt_id(r, "physician_id")?,
                    supervisors,
                    unreadable,
                })
            })
            .optional()
        })
        .map_err(db)
        .map(Option::unwrap_or_default)
}

fn open_pages_of(c: &Connection, ticket: TicketId) -> Result<Vec<Page>> {
    let mut s = c
        .prepare_cached("SELECT * FROM pages WHERE ticket_id = $1 AND status = 'open'")
        .map_err(db)?;
    s.query_map([ticket.to_string()], rows::page)
        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db)
}

/// A clinical clearance makes a ticket's open pages moot: supersede them.
fn supersede_cleared(c: &Connection, ticket: TicketId) -> Result<Vec<NewEvent>> {
    let mut open = open_pages_of(c, ticket)?;
    let events = escalation::supersede_all(&mut open, "clinical clearance recorded");
    for pg in &open {
        rows::upsert_page(c, pg)?;
    }
    Ok(events)
}

/// Page the first rung for a ticket's red flag, superseding older open pages.
fn page_ticket(
    tx: &Tx<'_>,
    t: &Ticket,
    flagged_at: Timestamp,
    s: &OrgSettings,
    now: Timestamp,
) -> Result<Page> {
    let open = open_pages_of(tx.conn, t.id)?;
    let r = rota(tx.conn, t.team_id)?;
    let (superseded, page, events) = escalation::page_again(t, open, &r, &s.ack, flagged_at, now);
    for old in &superseded {
        rows::upsert_page(tx.conn, old)?;
    }
    rows::upsert_page(tx.conn, &page)?;
    tx.append(t.org_id, now, events)?;
    Ok(page)
}

fn user_name(c: &Connection, u: UserId) -> Result<Option<String>> {
    c.prepare_cached("SELECT name FROM users WHERE id = $1")
        .and_then(|mut s| s.query_row([u.to_string()], |r| r.get(0)).optional())
        .map_err(db)
}

/// Record a refused attempt to bury a red flag, in its own transaction
/// (the attempt itself rolled back).
async fn refused<T: Send + 'static>(
    store: &SqliteStore,
    p: &Principal,
    id: TicketId,
    what: &'static str,
    result: Result<T>,
    now: Timestamp,
) -> Result<T> {
    if ticket::refused_by_interlock(&result) {
        let actor = p.actor();
        let _ = store
            .write(move |tx| {
                let t = rows::load_ticket(tx.conn, tx.crypto, id)?;
                tx.append(t.org_id, now, vec![t.override_refused(&actor, what)])
            })
            .await;
    }
    result
}

fn thread_of_member(c: &Connection, m: MemberId) -> Result<Option<Thread>> {
    c.prepare_cached("SELECT * FROM threads WHERE member_id = $1")
        .and_then(|mut s| s.query_row([m.to_string()], rows::thread).optional())
        .map_err(db)
}

fn latest_ticket(c: &Connection, k: &Crypto, thread: ThreadId) -> Result<Option<Ticket>> {
    c.prepare_cached(
        "SELECT * FROM tickets WHERE thread_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .and_then(|mut s| {
        s.query_row([thread.to_string()], rows::ticket(k))
            .optional()
    })
    .map_err(db)
}

fn ticket_with_queue(
    c: &Connection,
    k: &Crypto,
    p: &Principal,
    id: TicketId,
) -> Result<(Ticket, Queue)> {
    let t = rows::load_ticket(c, k, id)?;
    p.ticket_access(&t)?;
    let q = rows::load_queue(c, t.queue_id)?;
    Ok((t, q))
}

fn team_ids(c: &Connection, user: UserId) -> Result<Vec<TeamId>> {
    let mut s = c
        .prepare_cached("SELECT team_id FROM team_members WHERE user_id = $1")
        .map_err(db)?;
    let ids = s
        .query_map([user.to_string()], |r| rows::id::<TeamId>(r, "team_id"))
        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db)?;
    Ok(ids)
}

#[async_trait]
impl Store for SqliteStore {
    fn bus(&self) -> &Bus {
        &self.bus
    }

    async fn ready(&self) -> Result<()> {
        self.read(|c, _| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await?;
        self.write(|_| Ok(())).await
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let username = username.to_lowercase();
        self.read(move |c, _| {
            c.prepare_cached("SELECT *, password_hash FROM users WHERE username = $1")
                .and_then(|mut s| {
                    s.query_row([&username], |r| {
                        Ok(Credentials {
                            user: rows::user(r)?,
                            password_hash: r.get("password_hash")?,
                        })
                    })
                    .optional()
                })
                .map_err(db)
        })
        .await
    }

    async fn create_session(&self, s: NewSession, now: Timestamp) -> Result<()> {
        self.write(move |tx| {
            tx.conn
                .prepare_cached("INSERT INTO sessions (token_hash, user_id, org_id, created_at, expires_at, mfa_pending) VALUES ($1, $2, $3, $4, $5, $6)")
                .and_then(|mut st| {
                    st.execute(params![s.token_hash, s.user_id.to_string(), s.org_id.to_string(), us(now), us(s.expires_at), i64::from(s.mfa_pending)])
                })
                .map_err(db)?;
            tx.append(s.org_id, now, vec![session::created(s.user_id, s.expires_at)])
        })
        .await
    }

    async fn record_login_failure(
        &self,
        org: OrgId,
        user: Option<UserId>,
        username: &str,
        address: Option<std::net::IpAddr>,
        now: Timestamp,
    ) -> Result<()> {
        let username = username.to_owned();
        self.write(move |tx| {
            if let Some(u) = user {
                tx.conn
                    .prepare_cached("INSERT INTO login_failures (user_id, at) VALUES ($1, $2)")
                    .and_then(|mut s| s.execute(params![u.to_string(), us(now)]))
                    .map_err(db)?;
            }
            tx.append(
                org,
                now,
                vec![session::login_failed(user, &username, address)],
            )
        })
        .await
    }

    async fn record_login_attack(
        &self,
        org: OrgId,
        user: UserId,
        role: careline_core::model::Role,
        failures: u32,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| tx.append(org, now, vec![session::login_attack(user, role, failures)]))
            .await
    }

    async fn record_login_throttled(
        &self,
        org: OrgId,
        user: UserId,
        address: std::net::IpAddr,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| tx.append(org, now, vec![session::login_throttled(user, address)]))
            .await
    }

    async fn load_principal(
        &self,
        token_hash: &str,
        now: Timestamp,
        idle: jiff::SignedDuration,
        mark_used: bool,
    ) -> Result<Option<Principal>> {
        let token_hash = token_hash.to_owned();
        let th = token_hash.clone();
        let found = self
            .read(move |c, _| {
                let row = c
                    .prepare_cached(
                        "SELECT u.*, COALESCE(s.last_seen_at, s.created_at) AS seen, s.mfa_pending AS mfa_pending FROM sessions s JOIN users u ON u.id = s.user_id
                         WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.revoked_at IS NULL AND u.disabled = 0",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![th, us(now)], |r| Ok((rows::user(r)?, rows::ts(r, "seen")?, r.get::<_, i64>("mfa_pending")? != 0))).optional()
                    })
                    .map_err(db)?;
                let Some((user, seen, enrolment_only)) = row else { return Ok(None) };
                if session::lapsed(seen, now, idle) {
                    return Ok(None);
                }
                let team_ids = team_ids(c, user.id)?;
                let ids = |sql: &str, a: String, b: i64| -> Result<Vec<MemberId>> {
                    let mut s = c.prepare_cached(sql).map_err(db)?;
                    s.query_map(params![a, b], |r| rows::id::<MemberId>(r, "member_id"))
                        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                        .map_err(db)
                };
                let uid = user.id.to_string();
                let proxy_for = if user.role == Role::Proxy { proxies::scopes(c, user.id, now)? } else { Vec::new() };
                let mut grants = Vec::new();
                if user.role.is_staff() {
                    for m in ids("SELECT member_id FROM collaborators WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2", uid.clone(), us(now))? {
                        grants.push((m, Grant::Tagged));
                    }
                    let mut s = c
                        .prepare_cached(
                            "SELECT DISTINCT p.member_id, p.level, p.targets FROM pages p JOIN tickets t ON t.id = p.ticket_id
                             WHERE p.org_id = $1 AND t.status NOT IN ('solved', 'closed')",
                        )
                        .map_err(db)?;
                    let paged = s
                        .query_map([user.org_id.to_string()], |r| Ok((rows::id::<MemberId>(r, "member_id")?, r.get::<_, String>("level")?, r.get::<_, String>("targets")?)))
                        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                        .map_err(db)?;
                    for (m, level, targets) in paged {
                        if session::paged_by(&user, &level, &targets) {
                            grants.push((m, Grant::Paged));
                        }
                    }
                    for m in ids("SELECT member_id FROM break_glass WHERE user_id = $1 AND expires_at > $2", uid, us(now))? {
                        grants.push((m, Grant::BreakGlass));
                    }
                }
                let stale = session::touch_due(seen, now);
                Ok(Some((session::principal(user, team_ids, proxy_for, grants, enrolment_only), stale)))
            })
            .await?;
        let Some((p, stale)) = found else {
            return Ok(None);
        };
        if stale && mark_used {
            self.write(move |tx| {
                tx.conn
                    .prepare_cached("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                    .and_then(|mut s| s.execute(params![us(now), token_hash]))
                    .map_err(db)?;
                Ok(())
            })
            .await?;
        }
        Ok(Some(p))
    }

    async fn session_facts(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<careline_core::stream::SessionFacts>> {
        let th = token_hash.to_owned();
        self.read(move |c, _| {
            c.prepare_cached(SESSION_FACTS)
                .and_then(|mut s| {
                    s.query_row(params![th, us(now)], |r| {
                        let grant_expiries = ["tag_until", "glass_until", "proxy_until"]
                            .iter()
                            .filter_map(|col| r.get::<_, Option<i64>>(*col).transpose())
                            .map(|v| {
                                v.map(|us| {
                                    Timestamp::from_microsecond(us).unwrap_or(Timestamp::MAX)
                                })
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        Ok(careline_core::stream::SessionFacts {
                            expires_at: rows::ts(r, "expires_at")?,
                            revoked_at: r.get::<_, Option<i64>>("revoked_at")?.map(|us| {
                                Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
                            }),
                            seen: rows::ts(r, "seen")?,
                            disabled: r.get::<_, i64>("disabled")? != 0,
                            grant_expiries,
                        })
                    })
                    .optional()
                })
                .map_err(db)
        })
        .await
    }

    async fn revoke_session(&self, token_hash: &str, now: Timestamp) -> Result<()> {
        let th = token_hash.to_owned();
        self.write(move |tx| {
            let row: Option<(String, String)> = tx
                .conn
                .prepare_cached("SELECT user_id, org_id FROM sessions WHERE token_hash = $1 AND revoked_at IS NULL")
                .and_then(|mut s| s.query_row([&th], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(db)?;
            let Some((user, org)) = row else { return Ok(()) };
            tx.conn
                .prepare_cached("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2")
                .and_then(|mut s| s.execute(params![us(now), th]))
                .map_err(db)?;
            let (user, org): (UserId, OrgId) = (user.parse().map_err(|_| Error::internal("bad id"))?, org.parse().map_err(|_| Error::internal("bad id"))?);
            tx.append(org, now, vec![session::revoked_current(user)])
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        p: &Principal,
        user: UserId,
        now: Timestamp,
    ) -> Result<u64> {
        session::revoke_others_request(p)?;
        let p = p.clone();
        self.write(move |tx| {
            let u = rows::load_user(tx.conn, user)?
                .filter(|u| u.org_id == p.org_id)
                .ok_or(Error::NotFound("user"))?;
            let n = tx
                .conn
                .prepare_cached("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1")
                .and_then(|mut s| s.execute(params![us(now), u.id.to_string()]))
                .map_err(db)?;
            tx.append(p.org_id, now, vec![session::revoked_all(p.user_id, u.id, n as u64)])?;
            Ok(n as u64)
        })
        .await
    }

    async fn mfa_state(&self, user: UserId) -> Result<MfaState> {
        self.read(move |c, k| {
            let row: Option<(String, Option<String>, i64, Option<i64>)> = c
                .prepare_cached("SELECT org_id, totp_secret, totp_enabled, totp_last_step FROM users WHERE id = $1")
                .and_then(|mut s| s.query_row([user.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
                .map_err(db)?;
            let Some((org, secret, enabled, last_step)) = row else { return Err(Error::NotFound("user")) };
            let org: OrgId = org.parse().map_err(|_| Error::internal("bad org id"))?;
            let secret = secret.map(|s| k.open(org, &s, &rows::aad("user", &user, "totp"))).transpose()?;
            Ok(MfaState { enabled: enabled != 0, secret, last_step })
        })
        .await
    }

    async fn set_totp_secret(&self, p: &Principal, secret: String, now: Timestamp) -> Result<()> {
        let p = p.clone();
        self.write(move |tx| {
            let sealed =
                tx.crypto
                    .seal(p.org_id, &secret, &rows::aad("user", &p.user_id, "totp"))?;
            let n = tx
                .conn
                .prepare_cached(
                    "UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_enabled = 0",
                )
                .and_then(|mut s| s.execute(params![sealed, p.user_id.to_string()]))
                .map_err(db)?;
            if n == 0 {
                return Err(Error::conflict(
                    "mfa-enrolled",
                    "a second factor is already enrolled for this account",
                ));
            }
            let _ = now;
            Ok(())
        })
        .await
    }

    async fn enable_totp(
        &self,
        p: &Principal,
        step: i64,
        recovery_hashes: Vec<String>,
        now: Timestamp,
    ) -> Result<()> {
        let p = p.clone();
        self.write(move |tx| {
            let n = tx
                .conn
                .prepare_cached("UPDATE users SET totp_enabled = 1, totp_last_step = $1 WHERE id = $2 AND totp_enabled = 0 AND totp_secret IS NOT NULL")
                .and_then(|mut s| s.execute(params![step, p.user_id.to_string()]))
                .map_err(db)?;
            if n == 0 {
                return Err(Error::conflict("mfa-not-pending", "start enrolment first (POST /api/v1/me/mfa/totp), or it is already enabled"));
            }
            for h in &recovery_hashes {
                tx.conn
                    .prepare_cached("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .and_then(|mut s| s.execute(params![p.user_id.to_string(), h]))
                    .map_err(db)?;
            }
            tx.conn
                .prepare_cached("UPDATE sessions SET mfa_pending = 0 WHERE user_id = $1")
                .and_then(|mut s| s.execute([p.user_id.to_string()]))
                .map_err(db)?;
            tx.append(p.org_id, now, vec![session::mfa_enrolled(p.user_id, recovery_hashes.len())])
        })
        .await
    }

    async fn record_totp_step(&self, user: UserId, step: i64) -> Result<bool> {
        self.write(move |tx| {
            let n = tx
                .conn
                .prepare_cached("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)")
                .and_then(|mut s| s.execute(params![step, user.to_string()]))
                .map_err(db)?;
            Ok(n > 0)
        })
        .await
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let code_hash = code_hash.to_owned();
        self.write(move |tx| {
            let n = tx
                .conn
                .prepare_cached("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
                .and_then(|mut s| s.execute(params![us(now), user.to_string(), code_hash]))
                .map_err(db)?;
            if n > 0 {
                let org: String = tx.conn.query_row("SELECT org_id FROM users WHERE id = $1", [user.to_string()], |r| r.get(0)).map_err(db)?;
                let org: OrgId = org.parse().map_err(|_| Error::internal("bad org id"))?;
                tx.append(org, now, vec![session::recovery_used(user)])?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn record_contact(&self, req: ContactRequest, now: Timestamp) -> Result<ContactOutcome> {
        self.write(move |tx| {
            let c = tx.conn;
            let member = rows::load_member(c, tx.crypto, req.member_id)?;
            let p = &req.principal;
            let team = rows::load_team(c, member.team_id)?;
            let settings = settings(c, member.org_id)?;
            let thread = thread_of_member(c, member.id)?;
            let ticket = match &thread {
                Some(t) => latest_ticket(c, tx.crypto, t.id)?,
                None => None,
            };
            let kind = req.contact.kind;
            let mut plan = ingest::plan_contact(p, &member, &team, Existing { thread, ticket }, req.contact, &settings, now)?;
            if plan.new_thread {
                rows::insert_thread(c, &plan.thread)?;
            }
            rows::upsert_ticket(c, tx.crypto, &plan.ticket)?;
            rows::insert_message(c, tx.crypto, &plan.message)?;
            let call_id = if kind == ContactKind::CallNote {
                let id = CallId::new();
                c.prepare_cached(
                    "INSERT INTO calls (id, org_id, member_id, agent_id, message_id, ticket_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        id.to_string(),
                        member.org_id.to_string(),
                        member.id.to_string(),
                        p.user_id.to_string(),
                        plan.message.id.to_string(),
                        plan.ticket.id.to_string(),
                        us(now)
                    ])
                })
                .map_err(db)?;
                Some(id)
            } else {
                None
            };
            if let Some(m) = &plan.auto_reply {
                rows::insert_message(c, tx.crypto, m)?;
            }
            tx.append(member.org_id, now, std::mem::take(&mut plan.events))?;
            attachments::link(tx, p, &plan.message, member.id, member.team_id, &req.attachments, now)?;
            let page = if plan.page_needed { Some(page_ticket(tx, &plan.ticket, now, &settings, now)?) } else { None };
            let nurse = match page.as_ref().and_then(|p| p.targets.first()) {
                Some(u) => user_name(c, *u)?,
                None => None,
            };
            let queue = rows::load_queue(c, plan.ticket.queue_id)?;
            Ok(ContactOutcome::planned(plan, queue, call_id, page, nurse.as_deref()))
        })
        .await
    }

    async fn thread(
        &self,
        p: &Principal,
        id: ThreadId,
        now: Timestamp,
    ) -> Result<(Thread, Vec<Message>)> {
        let pc = p.clone();
        let (thread, msgs, read) = self
            .read(move |c, k| {
                let p = pc;
                let thread = c
                    .prepare_cached("SELECT * FROM threads WHERE id = $1")
                    .and_then(|mut s| s.query_row([id.to_string()], rows::thread).optional())
                    .map_err(db)?
                    .ok_or(Error::NotFound("thread"))?;
                let member = rows::load_member(c, k, thread.member_id)?;
                let grant = p.thread_access(&member)?;
                let mut s = c
                    .prepare_cached(
                        "SELECT * FROM messages WHERE thread_id = $1 ORDER BY created_at, id",
                    )
                    .map_err(db)?;
                let mut msgs = s
                    .query_map([id.to_string()], rows::message(k))
                    .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(db)?;
                msgs.retain(|m| p.sees_message(m));
                let read = PhiRead::thread(&thread, grant);
                Ok((thread, msgs, read))
            })
            .await?;
        self.log_reads(p, vec![read], now).await?;
        Ok((thread, msgs))
    }

    async fn ticket(&self, p: &Principal, id: TicketId, now: Timestamp) -> Result<(Ticket, Queue)> {
        let pc = p.clone();
        let (t, q) = self
            .read(move |c, k| ticket_with_queue(c, k, &pc, id))
            .await?;
        let grant = p.ticket_access(&t)?;
        self.log_reads(p, vec![PhiRead::ticket(&t, "ticket", grant)], now)
            .await?;
        Ok((t, q))
    }

    async fn queue(&self, p: &Principal, id: QueueId) -> Result<Queue> {
        let org = p.org_id;
        self.read(move |c, _| {
            let q = rows::load_queue(c, id)?;
            let o: String = c
                .query_row(
                    "SELECT org_id FROM queues WHERE id = $1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if o != org.to_string() {
                return Err(Error::NotFound("queue"));
            }
            Ok(q)
        })
        .await
    }

    async fn access_log(
        &self,
        p: &Principal,
        member: MemberId,
        limit: u32,
    ) -> Result<Vec<AccessEntry>> {
        let p = p.clone();
        self.read(move |c, k| {
            let m = rows::load_member(c, k, member)?;
            p.see_access_log(&m)?;
            let mut s = c
                .prepare_cached(
                    "SELECT e.at, e.actor_id, e.payload, u.name, u.role FROM events e LEFT JOIN users u ON u.id = e.actor_id
                     WHERE e.member_id = $1 AND e.kind = 'phi.read' ORDER BY e.at DESC, e.seq DESC LIMIT $2",
                )
                .map_err(db)?;
            s.query_map(params![member.to_string(), i64::from(limit.clamp(1, 5000))], |r| {
                let payload: String = r.get("payload")?;
                Ok(AccessEntry::from_event(rows::ts(r, "at")?, rows::opt_id(r, "actor_id")?, &payload, r.get("name")?, r.get("role")?))
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)
        })
        .await
    }

    async fn add_collaborator(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        reason: String,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Collaborator> {
        access::add_collaborator(self, p, thread, user, reason, expires_at, now).await
    }

    async fn remove_collaborator(
        &self,
        p: &Principal,
        thread: ThreadId,
        user: UserId,
        now: Timestamp,
    ) -> Result<()> {
        access::remove_collaborator(self, p, thread, user, now).await
    }

    async fn collaborators(&self, p: &Principal, thread: ThreadId) -> Result<Vec<Collaborator>> {
        access::collaborators(self, p, thread).await
    }

    async fn break_glass(
        &self,
        p: &Principal,
        member: MemberId,
        reason: String,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<BreakGlass> {
        access::break_glass(self, p, member, reason, until, now).await
    }

    async fn break_glass_reviews(&self, p: &Principal, open_only: bool) -> Result<Vec<BreakGlass>> {
        access::break_glass_reviews(self, p, open_only).await
    }

    async fn review_break_glass(
        &self,
        p: &Principal,
        id: uuid::Uuid,
        note: String,
        now: Timestamp,
    ) -> Result<BreakGlass> {
        access::review_break_glass(self, p, id, note, now).await
    }

    async fn tickets(
        &self,
        p: &Principal,
        f: TicketFilter,
        now: Timestamp,
    ) -> Result<Vec<(Ticket, Queue)>> {
        let pc = p.clone();
        let out = self.read(move |c, k| {
            let p = pc;
            let limit = f.page_size();
            let Some(scope) = p.ticket_scope() else {
                return Ok(Vec::new());
            };
            let mut sql = String::from(
                "SELECT t.*, q.id AS q_id, q.team_id AS q_team_id, q.name AS q_name, q.kind AS q_kind
                 FROM tickets t JOIN queues q ON q.id = t.queue_id WHERE t.org_id = $1",
            );
            let mut args: Vec<String> = vec![p.org_id.to_string()];
            let mut push = |cond: &str, v: String, sql: &mut String| {
                args.push(v);
                sql.push_str(&format!(" AND {cond} ${}", args.len()));
            };
            // Ids are UUIDs, so quoting them inline is safe.
            let list = |ids: Vec<String>| if ids.is_empty() { "''".to_owned() } else { ids.join(",") };
            sql.push_str(&format!(
                " AND (t.team_id IN ({}) OR t.member_id IN ({}))",
                list(scope.teams.iter().map(|t| format!("'{t}'")).collect()),
                list(scope.members.iter().map(|m| format!("'{m}'")).collect()),
            ));
            if let Some(q) = f.queue {
                push("t.queue_id =", q.to_string(), &mut sql);
            }
            if let Some(s) = f.status {
                push("t.status =", s.as_str().to_owned(), &mut sql);
            }
            if let Some(pr) = f.priority {
                push("t.priority =", pr.as_str().to_owned(), &mut sql);
            }
            if let Some(m) = f.member {
                push("t.member_id =", m.to_string(), &mut sql);
            }
            if f.review_pending {
                sql.push_str(" AND t.review_due IS NOT NULL");
            }
            sql.push_str(&format!(
                " ORDER BY t.priority_rank DESC, (t.next_due IS NULL), t.next_due, t.created_at LIMIT {limit}"
            ));
            let mut s = c.prepare(&sql).map_err(db)?;
            let out = s
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    let q = Queue {
                        id: rows::id(r, "q_id")?,
                        team_id: rows::id(r, "q_team_id")?,
                        name: r.get("q_name")?,
                        kind: r.get::<_, String>("q_kind")?.parse().unwrap_or(QueueKind::Team),
                    };
                    Ok((rows::ticket(k)(r)?, q))
                })
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            Ok(out)
        })
        .await?;
        self.log_reads(p, reads::ticket_list(p, out.iter().map(|(t, _)| t)), now)
            .await?;
        Ok(out)
    }

    async fn queues(&self, p: &Principal) -> Result<Vec<QueueSummary>> {
        let p = p.clone();
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(
                    "SELECT q.*, tm.name AS team_name,
                        COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed')) AS open,
                        COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed') AND t.assignee_id IS NULL) AS unassigned,
                        COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed') AND t.priority = 'emergency') AS emergency,
                        COUNT(t.id) FILTER (WHERE t.status NOT IN ('solved', 'closed') AND t.priority = 'urgent') AS urgent
                     FROM queues q JOIN teams tm ON tm.id = q.team_id
                     LEFT JOIN tickets t ON t.queue_id = q.id
                     WHERE q.org_id = $1
                     GROUP BY q.id ORDER BY tm.name, q.kind DESC",
                )
                .map_err(db)?;
            let all = s
                .query_map([p.org_id.to_string()], |r| {
                    Ok(QueueSummary {
                        queue: rows::queue(r)?,
                        team_name: r.get("team_name")?,
                        open: r.get("open")?,
                        unassigned: r.get("unassigned")?,
                        emergency: r.get("emergency")?,
                        urgent: r.get("urgent")?,
                    })
                })
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            Ok(all.into_iter().filter(|q| p.sees_team(q.queue.team_id)).collect())
        })
        .await
    }

    async fn member(&self, p: &Principal, id: MemberId, now: Timestamp) -> Result<(Member, Grant)> {
        let pc = p.clone();
        let (m, grant) = self
            .read(move |c, k| {
                let m = rows::load_member(c, k, id)?;
                let g = pc.record_access(m.org_id, m.id, m.team_id)?;
                Ok((m, g))
            })
            .await?;
        self.log_reads(p, vec![PhiRead::member(&m, grant)], now)
            .await?;
        Ok((m, grant))
    }

    async fn reply(
        &self,
        p: &Principal,
        id: TicketId,
        text: MessageText,
        internal: bool,
        files: Vec<AttachmentId>,
        now: Timestamp,
    ) -> Result<(Message, Ticket)> {
        let p = p.clone();
        self.write(move |tx| {
            let c = tx.conn;
            let mut t = rows::load_ticket(c, tx.crypto, id)?;
            p.work_ticket(&t)?;
            let (m, events) = t.staff_reply(&p.actor(), text, internal, now)?;
            rows::insert_message(c, tx.crypto, &m)?;
            rows::upsert_ticket(c, tx.crypto, &t)?;
            tx.append(t.org_id, now, events)?;
            attachments::link(tx, &p, &m, t.member_id, t.team_id, &files, now)?;
            Ok((m, t))
        })
        .await
    }

    async fn assign(
        &self,
        p: &Principal,
        id: TicketId,
        to: Option<UserId>,
        now: Timestamp,
    ) -> Result<Ticket> {
        let p = p.clone();
        self.write(move |tx| {
            let c = tx.conn;
            let mut t = rows::load_ticket(c, tx.crypto, id)?;
            p.work_ticket(&t)?;
            if let Some(to) = to {
                let assignee = rows::load_user(c, to)?;
                let teams = match &assignee {
                    Some(u) => team_ids(c, u.id)?,
                    None => Vec::new(),
                };
                t.check_assignee(assignee.as_ref(), &teams)?;
            }
            let events = t.assign(&p.actor(), to, now);
            rows::upsert_ticket(c, tx.crypto, &t)?;
            tx.append(t.org_id, now, events)?;
            Ok(t)
        })
        .await
    }

    async fn transition(
        &self,
        p: &Principal,
        id: TicketId,
        to: TicketStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Ticket> {
        let pc = p.clone();
        let what = ticket::transition_attempt(to);
        let r = self.write_transition(pc, id, to, reason, now).await;
        refused(self, p, id, what, r, now).await
    }

    async fn rota(&self, p: &Principal, team: TeamId) -> Result<Rota> {
        let p = p.clone();
        self.read(move |c, _| {
            p.see_rota(&rows::load_team(c, team)?)?;
            rota(c, team)
        })
        .await
    }

    async fn set_rota(&self, p: &Principal, team: TeamId, r: Rota, now: Timestamp) -> Result<Rota> {
        let p = p.clone();
        self.write(move |tx| {
            p.manage_rota(&rows::load_team(tx.conn, team)?)?;
            for (u, place) in r.named() {
                place.check(p.org_id, rows::load_user(tx.conn, u)?.as_ref())?;
            }
            tx.conn
                .prepare_cached(
                    "INSERT INTO rotas (team_id, org_id, primary_id, backup_id, physician_id, supervisors, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (team_id) DO UPDATE SET primary_id = excluded.primary_id, backup_id = excluded.backup_id,
                        physician_id = excluded.physician_id, supervisors = excluded.supervisors, updated_at = excluded.updated_at",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        team.to_string(),
                        p.org_id.to_string(),
                        r.primary.map(|x| x.to_string()),
                        r.backup.map(|x| x.to_string()),
                        r.physician.map(|x| x.to_string()),
                        serde_json::to_string(&r.supervisors).unwrap_or_else(|_| "[]".into()),
                        us(now)
                    ])
                })
                .map_err(db)?;
            tx.append(p.org_id, now, vec![r.set_event(p.user_id, team)])?;
            Ok(r)
        })
        .await
    }

    async fn ticket_pages(
        &self,
        p: &Principal,
        ticket: TicketId,
        now: Timestamp,
    ) -> Result<Vec<Page>> {
        let pc = p.clone();
        let (pages, read) = self
            .read(move |c, k| {
                let t = rows::load_ticket(c, k, ticket)?;
                let grant = pc.ticket_access(&t)?;
                let mut s = c.prepare_cached("SELECT * FROM pages WHERE ticket_id = $1 ORDER BY created_at DESC, id DESC").map_err(db)?;
                let pages = s.query_map([ticket.to_string()], rows::page).and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>()).map_err(db)?;
                Ok((pages, PhiRead::ticket(&t, "pages", grant)))
            })
            .await?;
        self.log_reads(p, vec![read], now).await?;
        Ok(pages)
    }

    async fn my_pages(&self, p: &Principal) -> Result<Vec<Page>> {
        let p = p.clone();
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(
                    "SELECT * FROM pages WHERE org_id = $1 AND status = 'open' ORDER BY created_at",
                )
                .map_err(db)?;
            let all = s
                .query_map([p.org_id.to_string()], rows::page)
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            let actor = p.actor();
            Ok(all.into_iter().filter(|pg| pg.may_ack(&actor)).collect())
        })
        .await
    }

    async fn ack_page(&self, p: &Principal, page: PageId, now: Timestamp) -> Result<Page> {
        let p = p.clone();
        self.write(move |tx| {
            let mut pg = tx
                .conn
                .prepare_cached("SELECT * FROM pages WHERE id = $1")
                .and_then(|mut s| s.query_row([page.to_string()], rows::page).optional())
                .map_err(db)?
                .filter(|pg| pg.org_id == p.org_id)
                .ok_or(Error::NotFound("page"))?;
            let events = pg.acknowledge(&p.actor(), now)?;
            rows::upsert_page(tx.conn, &pg)?;
            tx.append(pg.org_id, now, events)?;
            Ok(pg)
        })
        .await
    }

    async fn escalate_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Page>> {
        self.write(move |tx| {
            let due: Vec<Page> = {
                let mut s = tx
                    .conn
                    .prepare_cached("SELECT * FROM pages WHERE status = 'open' AND deadline IS NOT NULL AND deadline <= $1 ORDER BY deadline LIMIT $2")
                    .map_err(db)?;
                s.query_map(params![us(now), i64::from(limit)], rows::page)
                    .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(db)?
            };
            let mut fired = Vec::new();
            for mut pg in due {
                // Inside this write transaction the page is still open: no
                // other process can have escalated it (exactly once).
                let t = rows::load_ticket(tx.conn, tx.crypto, pg.ticket_id)?;
                let s = settings(tx.conn, pg.org_id)?;
                let r = rota(tx.conn, pg.team_id)?;
                let (next, events) = pg.escalate(&t, &r, &s.ack, now)?;
                rows::upsert_page(tx.conn, &pg)?;
                rows::upsert_page(tx.conn, &next)?;
                tx.append(pg.org_id, now, events)?;
                fired.push(next);
            }
            Ok(fired)
        })
        .await
    }

    async fn next_page_deadline(&self) -> Result<Option<Timestamp>> {
        self.read(|c, _| {
            let v: Option<i64> = c
                .query_row("SELECT MIN(deadline) FROM pages WHERE status = 'open' AND deadline IS NOT NULL", [], |r| r.get(0))
                .map_err(db)?;
            Ok(v.and_then(|us| Timestamp::from_microsecond(us).ok()))
        })
        .await
    }

    async fn clear(
        &self,
        p: &Principal,
        id: TicketId,
        disposition: careline_core::Disposition,
        note: String,
        now: Timestamp,
    ) -> Result<Ticket> {
        let p = p.clone();
        self.write(move |tx| {
            let mut t = rows::load_ticket(tx.conn, tx.crypto, id)?;
            p.ticket_access(&t).or_else(|e| {
                if p.role.is_clinical() && paged_on(tx.conn, &p, id)? {
                    Ok(careline_core::authz::Grant::CareTeam)
                } else {
                    Err(e)
                }
            })?;
            let team = rows::load_team(tx.conn, t.team_id)?;
            let mut events = t.clear(&p.actor(), disposition, &note, &team, now)?;
            events.extend(supersede_cleared(tx.conn, id)?);
            rows::upsert_ticket(tx.conn, tx.crypto, &t)?;
            tx.append(t.org_id, now, events)?;
            Ok(t)
        })
        .await
    }

    async fn mark_judgement(
        &self,
        p: &Principal,
        ticket: TicketId,
        message: MessageId,
        should_be: careline_core::Disposition,
        note: String,
        now: Timestamp,
    ) -> Result<JudgementMark> {
        let p = p.clone();
        self.write(move |tx| {
            let t = rows::load_ticket(tx.conn, tx.crypto, ticket)?;
            let m = rows::load_message(tx.conn, tx.crypto, p.org_id, message)?;
            let (mark, ev) = feedback::mark(&p, &t, &m, should_be, &note, now)?;
            rows::insert_mark(tx.conn, tx.crypto, &mark)?;
            tx.append(mark.org_id, now, vec![ev])?;
            Ok(mark)
        })
        .await
    }

    async fn judgement_marks(
        &self,
        p: &Principal,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MarkedContact>> {
        feedback::list_request(p)?;
        let org = p.org_id;
        let out = self
            .read(move |c, k| {
                let marks = c
                    .prepare_cached(
                        "SELECT * FROM judgement_marks WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT $2",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![org.to_string(), limit.clamp(1, 10_000)], rows::mark(k))
                            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                    })
                    .map_err(db)?;
                marks
                    .into_iter()
                    .map(|mark| {
                        let m = rows::load_message(c, k, org, mark.message_id)?;
                        let member = rows::load_member(c, k, mark.member_id)?;
                        Ok(MarkedContact::new(mark, &m, member.language))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        self.log_reads(p, out.iter().map(MarkedContact::read).collect(), now)
            .await?;
        Ok(out)
    }

    async fn clear_review(
        &self,
        p: &Principal,
        id: TicketId,
        note: String,
        now: Timestamp,
    ) -> Result<Ticket> {
        let p = p.clone();
        self.write(move |tx| {
            let mut t = rows::load_ticket(tx.conn, tx.crypto, id)?;
            p.work_ticket(&t)?;
            let team = rows::load_team(tx.conn, t.team_id)?;
            let events = t.clear_review(&p.actor(), &note, &team, now)?;
            rows::upsert_ticket(tx.conn, tx.crypto, &t)?;
            tx.append(t.org_id, now, events)?;
            Ok(t)
        })
        .await
    }

    async fn set_priority(
        &self,
        p: &Principal,
        id: TicketId,
        to: careline_core::Disposition,
        reason: String,
        now: Timestamp,
    ) -> Result<Ticket> {
        let pc = p.clone();
        let r = self
            .write(move |tx| {
                let p = pc;
                let mut t = rows::load_ticket(tx.conn, tx.crypto, id)?;
                p.work_ticket(&t)?;
                let before = t.clone();
                let team = rows::load_team(tx.conn, t.team_id)?;
                let s = settings(tx.conn, t.org_id)?;
                let mut events = t.set_priority(&p.actor(), to, &reason, &team, &s.sla, now)?;
                if t.clearance.is_some() {
                    events.extend(supersede_cleared(tx.conn, id)?);
                }
                rows::upsert_ticket(tx.conn, tx.crypto, &t)?;
                tx.append(t.org_id, now, events)?;
                if Ticket::needs_page(Some(&before), &t) {
                    page_ticket(tx, &t, now, &s, now)?;
                }
                Ok(t)
            })
            .await;
        refused(self, p, id, "lower the priority", r, now).await
    }

    async fn book_visit(
        &self,
        p: &Principal,
        id: TicketId,
        kind: VisitKind,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<Visit> {
        let pc = p.clone();
        let r = self
            .write(move |tx| {
                let p = pc;
                let t = rows::load_ticket(tx.conn, tx.crypto, id)?;
                p.work_ticket(&t)?;
                let (v, events) = t.book_visit(&p.actor(), kind, at, now)?;
                tx.conn
                    .prepare_cached("INSERT INTO visits (id, org_id, ticket_id, member_id, kind, at, booked_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .and_then(|mut s| {
                        s.execute(params![v.id.to_string(), v.org_id.to_string(), v.ticket_id.to_string(), v.member_id.to_string(), kind.as_str(), us(at), p.user_id.to_string(), us(now)])
                    })
                    .map_err(db)?;
                tx.append(t.org_id, now, events)?;
                Ok(v)
            })
            .await;
        refused(self, p, id, "book a routine visit", r, now).await
    }

    async fn settings(&self, org: OrgId) -> Result<OrgSettings> {
        self.read(move |c, _| settings(c, org)).await
    }

    async fn set_settings(&self, p: &Principal, new: OrgSettings, now: Timestamp) -> Result<()> {
        let ev = new.change_event(p)?;
        let org = p.org_id;
        self.write(move |tx| {
            let text = serde_json::to_string(&new).map_err(Error::internal)?;
            tx.conn
                .prepare_cached("UPDATE organizations SET settings = $1 WHERE id = $2")
                .and_then(|mut s| s.execute(params![text, org.to_string()]))
                .map_err(db)?;
            tx.append(org, now, vec![ev])
        })
        .await
    }

    async fn create_webhook(
        &self,
        p: &Principal,
        url: String,
        secret: String,
        events: Vec<String>,
        now: Timestamp,
    ) -> Result<Webhook> {
        hooks::create(self, p, url, secret, events, now).await
    }

    async fn webhooks(&self, p: &Principal) -> Result<Vec<Webhook>> {
        hooks::list(self, p).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        hooks::claim(self, now, lease_until, limit).await
    }

    async fn renew_deliveries(&self, ids: Vec<DeliveryId>, lease_until: Timestamp) -> Result<()> {
        hooks::renew(self, ids, lease_until).await
    }

    async fn delivery_attempted(
        &self,
        id: DeliveryId,
        ok: bool,
        error: Option<String>,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<()> {
        hooks::attempted(self, id, ok, error, retry_at, now).await
    }

    async fn deliveries(&self, p: &Principal, status: &str, limit: u32) -> Result<Vec<Delivery>> {
        hooks::deliveries(self, p, status, limit).await
    }

    async fn replay_delivery(
        &self,
        p: &Principal,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery> {
        hooks::replay(self, p, id, now).await
    }

    async fn contacts(
        &self,
        since: Timestamp,
        until: Timestamp,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<PastContact>> {
        audit::contacts(self, since, until, after, limit).await
    }

    async fn contact_count(&self, since: Timestamp, until: Timestamp) -> Result<i64> {
        audit::contact_count(self, since, until).await
    }

    async fn ticket_histories(
        &self,
        tickets: Vec<TicketId>,
    ) -> Result<std::collections::HashMap<TicketId, TicketHistory>> {
        audit::histories(self, tickets).await
    }

    async fn file_findings(&self, findings: Vec<NewFinding>, now: Timestamp) -> Result<usize> {
        audit::file(self, findings, now).await
    }

    async fn safety_reviews(
        &self,
        p: &Principal,
        status: Option<String>,
    ) -> Result<Vec<SafetyReview>> {
        audit::reviews(self, p, status).await
    }

    async fn resolve_review(
        &self,
        p: &Principal,
        id: ReviewId,
        note: String,
        now: Timestamp,
    ) -> Result<SafetyReview> {
        audit::resolve(self, p, id, note, now).await
    }

    async fn safety_report(
        &self,
        p: &Principal,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<SafetyReport> {
        audit::report(self, p, since, until).await
    }
    async fn create_org(&self, name: &str, now: Timestamp) -> Result<Organization> {
        let (o, ev) = admin::new_org(name, now)?;
        self.write(move |tx| {
            tx.crypto.ensure_org_key(tx.conn, o.id, us(now))?;
            tx.conn
                .prepare_cached("INSERT INTO organizations (id, name, settings, created_at) VALUES ($1, $2, $3, $4)")
                .and_then(|mut s| {
                    s.execute(params![o.id.to_string(), o.name, serde_json::to_string(&OrgSettings::default()).unwrap_or_else(|_| "{}".into()), us(now)])
                })
                .map_err(db)?;
            tx.append(o.id, now, vec![ev])?;
            Ok(o)
        })
        .await
    }

    async fn org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        let name = name.to_owned();
        self.read(move |c, _| {
            c.prepare_cached("SELECT * FROM organizations WHERE name = $1")
                .and_then(|mut s| s.query_row([name], rows::org).optional())
                .map_err(db)
        })
        .await
    }

    async fn orgs(&self) -> Result<Vec<Organization>> {
        self.read(|c, _| {
            let mut s = c
                .prepare_cached("SELECT * FROM organizations ORDER BY name")
                .map_err(db)?;
            s.query_map([], rows::org)
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)
        })
        .await
    }

    async fn create_team(
        &self,
        org: OrgId,
        name: &str,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<CareTeam> {
        let (t, ev) = admin::new_team(org, name, actor)?;
        self.write(move |tx| {
            tx.conn
                .prepare_cached("INSERT INTO teams (id, org_id, name, team_queue, clinical_queue, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .and_then(|mut s| {
                    s.execute(params![t.id.to_string(), org.to_string(), t.name, t.team_queue.to_string(), t.clinical_queue.to_string(), us(now)])
                })
                .map_err(db)?;
            for (qid, kind, name) in admin::team_queues(&t) {
                tx.conn
                    .prepare_cached("INSERT INTO queues (id, org_id, team_id, name, kind) VALUES ($1, $2, $3, $4, $5)")
                    .and_then(|mut s| s.execute(params![qid.to_string(), org.to_string(), t.id.to_string(), name, kind.as_str()]))
                    .map_err(db)?;
            }
            tx.append(org, now, vec![ev])?;
            Ok(t)
        })
        .await
    }

    async fn teams(&self, org: OrgId) -> Result<Vec<CareTeam>> {
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached("SELECT * FROM teams WHERE org_id = $1 ORDER BY name")
                .map_err(db)?;
            s.query_map([org.to_string()], rows::team)
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)
        })
        .await
    }

    async fn create_user(&self, u: NewUser, actor: Option<UserId>, now: Timestamp) -> Result<User> {
        let user = u.user()?;
        self.write(move |tx| {
            if let Some(m) = u.member_id {
                let member = rows::load_member(tx.conn, tx.crypto, m)?;
                if member.org_id != u.org_id {
                    return Err(Error::NotFound("member"));
                }
            }
            insert_user(tx, &user, &u.password_hash, actor, now)?;
            Ok(user)
        })
        .await
    }

    async fn users(&self, org: OrgId) -> Result<Vec<User>> {
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached("SELECT * FROM users WHERE org_id = $1 ORDER BY username")
                .map_err(db)?;
            s.query_map([org.to_string()], rows::user)
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)
        })
        .await
    }

    async fn add_to_team(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| {
            let t = rows::load_team(tx.conn, team)?;
            let u = rows::load_user(tx.conn, user)?
                .ok_or(Error::NotFound("user"))?;
            admin::check_team_join(org, &t, &u)?;
            let n = tx
                .conn
                .prepare_cached("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .and_then(|mut s| s.execute(params![team.to_string(), user.to_string()]))
                .map_err(db)?;
            if n > 0 {
                tx.append(org, now, vec![admin::team_joined(team, user, actor)])?;
            }
            Ok(())
        })
        .await
    }

    async fn remove_from_team(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<bool> {
        self.write(move |tx| {
            let t = rows::load_team(tx.conn, team)?;
            let u = rows::load_user(tx.conn, user)?.ok_or(Error::NotFound("user"))?;
            admin::check_team_join(org, &t, &u)?;
            let n = tx
                .conn
                .prepare_cached("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                .and_then(|mut s| s.execute(params![team.to_string(), user.to_string()]))
                .map_err(db)?;
            if n > 0 {
                tx.append(org, now, vec![admin::team_left(team, user, actor)])?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn create_members(
        &self,
        members: Vec<(NewMember, Option<MemberLogin>)>,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<Vec<(Member, Option<User>)>> {
        let planned = members
            .into_iter()
            .map(|(m, login)| {
                let member = m.member(now)?;
                let user = login.map(|l| {
                    let u = l.for_member(&member);
                    u.user().map(|user| (user, l.password_hash))
                });
                Ok((m, member, user.transpose()?))
            })
            .collect::<Result<Vec<_>>>()?;
        self.write(move |tx| {
            let mut out = Vec::with_capacity(planned.len());
            for (m, member, login) in planned {
                let team = rows::load_team(tx.conn, m.team_id)?;
                if team.org_id != m.org_id {
                    return Err(Error::NotFound("team"));
                }
                rows::insert_member(tx.conn, tx.crypto, &member, m.external_ref.as_deref())?;
                tx.append(
                    member.org_id,
                    now,
                    vec![admin::member_created(
                        &member,
                        m.external_ref.as_deref(),
                        actor,
                    )],
                )?;
                let user = match login {
                    Some((user, hash)) => {
                        insert_user(tx, &user, &hash, actor, now)?;
                        Some(user)
                    }
                    None => None,
                };
                out.push((member, user));
            }
            Ok(out)
        })
        .await
    }

    async fn members(&self, org: OrgId) -> Result<Vec<Member>> {
        self.read(move |c, k| {
            let mut s = c
                .prepare_cached("SELECT * FROM members WHERE org_id = $1")
                .map_err(db)?;
            let mut all = s
                .query_map([org.to_string()], rows::member(k))
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            // Names are sealed, so the database cannot order them.
            all.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(all)
        })
        .await
    }

    async fn member_names(
        &self,
        org: OrgId,
        mut ids: Vec<MemberId>,
    ) -> Result<std::collections::HashMap<MemberId, String>> {
        ids.sort_unstable();
        ids.dedup();
        self.read(move |c, k| {
            let mut s = c
                .prepare_cached("SELECT * FROM members WHERE org_id = $1 AND id = $2")
                .map_err(db)?;
            let mut out = std::collections::HashMap::with_capacity(ids.len());
            for id in ids {
                if let Some(m) = s
                    .query_row([org.to_string(), id.to_string()], rows::member(k))
                    .optional()
                    .map_err(db)?
                {
                    out.insert(m.id, m.name);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn grant_proxy(
        &self,
        org: OrgId,
        proxy: UserId,
        member: MemberId,
        scope: careline_core::authz::ProxyScope,
        expires_at: Option<Timestamp>,
        actor: Option<UserId>,
        now: Timestamp,
    ) -> Result<()> {
        self.write(move |tx| proxies::grant(tx, org, proxy, member, scope, expires_at, actor, now))
            .await
    }

    async fn grant_proxy_as_member(
        &self,
        p: &Principal,
        member: MemberId,
        proxy_username: &str,
        scope: careline_core::authz::ProxyScope,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<ProxyEntry> {
        proxies::grant_as_member(self, p, member, proxy_username, scope, expires_at, now).await
    }

    async fn revoke_proxy(
        &self,
        p: &Principal,
        member: MemberId,
        proxy: UserId,
        now: Timestamp,
    ) -> Result<()> {
        proxies::revoke(self, p, member, proxy, now).await
    }

    async fn member_proxies(
        &self,
        p: &Principal,
        member: MemberId,
        now: Timestamp,
    ) -> Result<Vec<ProxyEntry>> {
        proxies::member_proxies(self, p, member, now).await
    }

    async fn my_proxy_grants(&self, p: &Principal, now: Timestamp) -> Result<Vec<ProxyEntry>> {
        proxies::my_grants(self, p, now).await
    }

    async fn set_consent(
        &self,
        p: &Principal,
        member: MemberId,
        change: ConsentChange,
        now: Timestamp,
    ) -> Result<Vec<SensitiveCategory>> {
        proxies::set_consent(self, p, member, change, now).await
    }

    async fn consents(&self, p: &Principal, member: MemberId) -> Result<Vec<SensitiveCategory>> {
        proxies::consents(self, p, member).await
    }

    async fn redact_message(
        &self,
        p: &Principal,
        id: MessageId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Message> {
        let reason = privacy::redaction_request(p, reason)?;
        let p = p.clone();
        self.write(move |tx| {
            let c = tx.conn;
            let mut m = c
                .prepare_cached("SELECT * FROM messages WHERE id = $1")
                .and_then(|mut s| s.query_row([id.to_string()], rows::message(tx.crypto)).optional())
                .map_err(db)?
                .filter(|m| m.org_id == p.org_id)
                .ok_or(Error::NotFound("message"))?;
            let thread = rows::load_thread(c, m.thread_id)?;
            let member = rows::load_member(c, tx.crypto, thread.member_id)?;
            let ev = privacy::redact(&p, &mut m, &member, &reason, now)?;
            c.prepare_cached(
                "UPDATE messages SET redacted_at = $1, redacted_by = $2, redacted_by_role = $3, redaction_reason = $4 WHERE id = $5 AND redacted_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![us(now), p.user_id.to_string(), p.role.as_str(), reason, id.to_string()]))
            .map_err(db)?;
            tx.append(m.org_id, now, vec![ev])?;
            Ok(m)
        })
        .await
    }

    async fn reach_member(&self, p: &Principal, member: MemberId) -> Result<Grant> {
        let p = p.clone();
        self.read(move |c, k| {
            let m = rows::load_member(c, k, member)?;
            p.member_access(m.org_id, m.id, m.team_id)
        })
        .await
    }

    async fn blob_key(&self, org: OrgId) -> Result<careline_crypto::DataKey> {
        self.crypto.data_key(org)
    }

    async fn create_attachments(
        &self,
        p: &Principal,
        files: Vec<NewAttachment>,
        now: Timestamp,
    ) -> Result<Vec<careline_core::attachment::Attachment>> {
        attachments::create(self, p, files, now).await
    }

    async fn attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
    ) -> Result<careline_core::attachment::Attachment> {
        attachments::get(self, p, id).await
    }

    async fn download_attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
        now: Timestamp,
    ) -> Result<careline_core::attachment::Attachment> {
        attachments::download(self, p, id, now).await
    }

    async fn thread_attachments(
        &self,
        p: &Principal,
        thread: ThreadId,
    ) -> Result<Vec<careline_core::attachment::Attachment>> {
        attachments::of_thread(self, p, thread).await
    }

    async fn claim_scans(
        &self,
        now: Timestamp,
        lease: jiff::SignedDuration,
        limit: u32,
    ) -> Result<Vec<careline_core::attachment::Attachment>> {
        attachments::claim(self, now, lease, limit).await
    }

    async fn finish_scan(
        &self,
        id: AttachmentId,
        outcome: ScanOutcome,
        now: Timestamp,
    ) -> Result<careline_core::attachment::Attachment> {
        attachments::finish(self, id, outcome, now).await
    }

    async fn export_attachment(
        &self,
        p: &Principal,
        id: AttachmentId,
        reason: &str,
        now: Timestamp,
    ) -> Result<careline_core::attachment::Attachment> {
        attachments::export(self, p, id, reason, now).await
    }

    async fn verify_chains(&self) -> Result<Vec<ChainReport>> {
        self.read(|c, _| verify_chains_on(c)).await
    }

    async fn verify_rows(
        &self,
        progress: Option<careline_store::deep::Progress>,
    ) -> Result<Vec<careline_store::deep::RowReport>> {
        self.read(move |c, k| deep::verify_rows_on(c, k, progress))
            .await
    }

    async fn events(&self, org: OrgId, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(
                    "SELECT * FROM events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .map_err(db)?;
            s.query_map(
                params![
                    org.to_string(),
                    after_seq,
                    i64::from(limit.clamp(1, 10_000))
                ],
                rows::event,
            )
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)
        })
        .await
    }

    async fn search_members(
        &self,
        p: &Principal,
        query: &str,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<MemberSummary>> {
        search::search_members(self, p, query, limit, now).await
    }

    async fn ticket_member(&self, p: &Principal, ticket: TicketId) -> Result<MemberId> {
        search::ticket_member(self, p, ticket).await
    }
}

/// Whether `p` holds a page on this ticket (a paged clinician may act on it).
fn paged_on(c: &Connection, p: &Principal, ticket: TicketId) -> Result<bool> {
    let mut s = c
        .prepare_cached("SELECT * FROM pages WHERE ticket_id = $1")
        .map_err(db)?;
    let pages = s
        .query_map([ticket.to_string()], rows::page)
        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db)?;
    Ok(p.holds_page(&pages))
}

impl SqliteStore {
    async fn write_transition(
        &self,
        p: Principal,
        id: TicketId,
        to: TicketStatus,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Ticket> {
        self.write(move |tx| {
            let c = tx.conn;
            let mut t = rows::load_ticket(c, tx.crypto, id)?;
            p.work_ticket(&t)?;
            let events = t.transition(&p.actor(), to, reason.as_deref(), now)?;
            rows::upsert_ticket(c, tx.crypto, &t)?;
            tx.append(t.org_id, now, events)?;
            Ok(t)
        })
        .await
    }

    /// Record reads of PHI as events: who, with which role, what, and the
    /// grant that allowed it. A member reading their own data is not logged.
    async fn log_reads(&self, p: &Principal, reads: Vec<PhiRead>, now: Timestamp) -> Result<()> {
        let recorded = reads::recorded(p, &reads);
        if recorded.is_empty() {
            return Ok(());
        }
        self.write(move |tx| {
            for (org, events) in recorded {
                tx.append(org, now, events)?;
            }
            Ok(())
        })
        .await
    }
}

/// Recompute every organization's chain in the database behind `c`.
pub fn verify_chains_on(c: &Connection) -> Result<Vec<ChainReport>> {
    let orgs: Vec<(String, String)> = {
        let mut s = c
            .prepare("SELECT o.id, o.name FROM organizations o UNION SELECT DISTINCT e.org_id, '(unknown organization)' FROM events e WHERE e.org_id NOT IN (SELECT id FROM organizations) ORDER BY 2")
            .map_err(db)?;
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?
    };
    let mut out = Vec::new();
    for (org, name) in orgs {
        let mut v = ChainVerifier::default();
        let mut error = None;
        let mut s = c
            .prepare("SELECT * FROM events WHERE org_id = $1 ORDER BY seq")
            .map_err(db)?;
        let mut rows_ = s.query([&org]).map_err(db)?;
        while let Some(r) = rows_.next().map_err(db)? {
            match rows::event(r) {
                Ok(e) => {
                    if let Err(err) = v.check(&e) {
                        error = Some(err.to_string());
                        break;
                    }
                }
                Err(e) => {
                    error = Some(format!("event after seq {} cannot be read: {e}", v.count()));
                    break;
                }
            }
        }
        if error.is_none() {
            let head: Option<(i64, String)> = c
                .query_row(
                    "SELECT seq, hash FROM chain_heads WHERE org_id = $1",
                    [&org],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            if let Err(err) = v.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))) {
                error = Some(err.to_string());
            }
        }
        out.push(ChainReport {
            org_id: org
                .parse()
                .map_err(|_| Error::internal("bad organization id in events"))?,
            org_name: name,
            events: v.count(),
            last_hash: v.last_hash().to_owned(),
            error,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod key_location_tests {
    use super::*;

    /// These tests read where the key file goes; a key given in the
    /// environment would bypass that.
    fn key_from_environment() -> bool {
        std::env::var_os("CARELINE_MASTER_KEY").is_some()
            || std::env::var_os("CARELINE_MASTER_KEY_FILE").is_some()
    }

    #[test]
    fn a_new_data_directory_gets_its_master_key_beside_it_not_inside() {
        if key_from_environment() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("careline-data");
        drop(SqliteStore::open(&data).unwrap());
        assert!(root.path().join("careline-data.key").is_file());
        assert!(!data.join(MASTER_KEY_FILE).exists());
        assert!(!key_in_data_dir(&data, &key_file(&data)));
    }

    #[test]
    fn a_data_directory_that_holds_its_key_keeps_opening_with_it() {
        if key_from_environment() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("careline-data");
        let inside = data.join(MASTER_KEY_FILE);
        drop(SqliteStore::open_with_key_file(&data, &inside).unwrap());
        assert_eq!(key_file(&data), inside);
        assert!(key_in_data_dir(&data, &inside));
        // Opening with the key it was created with (a new key would not
        // unwrap the data keys), and creating none beside it.
        drop(SqliteStore::open(&data).unwrap());
        assert!(!root.path().join("careline-data.key").exists());
    }
}
