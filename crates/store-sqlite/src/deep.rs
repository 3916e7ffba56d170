//! Deep verification on the embedded database: reads every organization's
//! events and its message, ticket, page and attachment rows inside one read
//! transaction (one snapshot, so rows committed meanwhile cannot look like
//! rows without events) and feeds them to [`careline_store::deep`], where
//! the comparison lives.

use crate::crypt::Crypto;
use crate::rows::{self, db};
use careline_core::ids::*;
use careline_core::{Error, Result};
use careline_store::deep::*;
use rusqlite::{Connection, Row};

/// Rows with an organization no longer in `organizations` are still
/// checked, under their bare id: a row moved out of its organization must
/// show up somewhere.
const ORGS: &str = "SELECT o.id, o.name FROM organizations o
    UNION SELECT org_id, '(unknown organization)' FROM (
        SELECT org_id FROM events UNION SELECT org_id FROM messages UNION SELECT org_id FROM tickets
        UNION SELECT org_id FROM pages UNION SELECT org_id FROM attachments)
      WHERE org_id NOT IN (SELECT id FROM organizations)
    ORDER BY 2, 1";

/// Everything fed to the verifier, for the progress total.
const TOTAL: &str = "SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM messages)
    + (SELECT COUNT(*) FROM tickets) + (SELECT COUNT(*) FROM pages) + (SELECT COUNT(*) FROM attachments)";

fn each(
    c: &Connection,
    sql: &str,
    org: &str,
    mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<()>,
) -> Result<()> {
    let mut s = c.prepare(sql).map_err(db)?;
    let mut found = s.query([org]).map_err(db)?;
    while let Some(r) = found.next().map_err(db)? {
        f(r).map_err(|e| Error::internal(format!("reading a row to verify: {e}")))?;
    }
    Ok(())
}

/// The deep verification of the database behind `c`, in one snapshot.
pub fn verify_rows_on(
    c: &Connection,
    k: &Crypto,
    progress: Option<Progress>,
) -> Result<Vec<RowReport>> {
    let tx = c.unchecked_transaction().map_err(db)?;
    let total: i64 = tx.query_row(TOTAL, [], |r| r.get(0)).map_err(db)?;
    let orgs: Vec<(String, String)> = {
        let mut s = tx.prepare(ORGS).map_err(db)?;
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?
    };
    let mut v = DeepVerifier::new(u64::try_from(total).unwrap_or(0), progress);
    for (org_text, name) in orgs {
        let org: OrgId = org_text
            .parse()
            .map_err(|_| Error::internal(format!("'{org_text}' is not an organization id")))?;
        v.organization(org, &name);
        let o = org_text.as_str();
        each(
            &tx,
            "SELECT * FROM events WHERE org_id = $1 ORDER BY seq",
            o,
            |r| {
                v.event(&rows::event(r)?);
                Ok(())
            },
        )?;
        each(
            &tx,
            "SELECT id, thread_id, ticket_id, kind, body, redacted_at FROM messages WHERE org_id = $1",
            o,
            |r| {
                let id: MessageId = rows::id(r, "id")?;
                let body: String = r.get("body")?;
                v.message(MessageRow {
                    id,
                    thread_id: rows::id(r, "thread_id")?,
                    ticket_id: rows::opt_id(r, "ticket_id")?,
                    kind: r.get("kind")?,
                    text: k
                        .open(org, &body, &rows::aad("message", &id, "body"))
                        .map_err(|e| e.to_string()),
                    redacted: r.get::<_, Option<i64>>("redacted_at")?.is_some(),
                });
                Ok(())
            },
        )?;
        each(
            &tx,
            "SELECT id, thread_id, member_id, status, priority, queue_id, assignee_id FROM tickets WHERE org_id = $1",
            o,
            |r| {
                v.ticket(TicketRow {
                    id: rows::id(r, "id")?,
                    thread_id: rows::id(r, "thread_id")?,
                    member_id: rows::id(r, "member_id")?,
                    status: r.get("status")?,
                    priority: r.get("priority")?,
                    queue_id: rows::id(r, "queue_id")?,
                    assignee_id: rows::opt_id(r, "assignee_id")?,
                });
                Ok(())
            },
        )?;
        each(
            &tx,
            "SELECT id, ticket_id, level, disposition, status, acked_by FROM pages WHERE org_id = $1",
            o,
            |r| {
                v.page(PageRow {
                    id: rows::id(r, "id")?,
                    ticket_id: rows::id(r, "ticket_id")?,
                    level: r.get("level")?,
                    disposition: r.get("disposition")?,
                    status: r.get("status")?,
                    acked_by: rows::opt_id(r, "acked_by")?,
                });
                Ok(())
            },
        )?;
        each(
            &tx,
            "SELECT id, member_id, sha256, size, content_type, state, message_id FROM attachments WHERE org_id = $1",
            o,
            |r| {
                v.attachment(AttachmentRow {
                    id: rows::id(r, "id")?,
                    member_id: rows::id(r, "member_id")?,
                    sha256: r.get("sha256")?,
                    size: r.get("size")?,
                    content_type: r.get("content_type")?,
                    state: r.get("state")?,
                    message_id: rows::opt_id(r, "message_id")?,
                });
                Ok(())
            },
        )?;
    }
    drop(tx);
    Ok(v.finish())
}
