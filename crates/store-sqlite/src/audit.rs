//! Reads and writes of the retrospective safety audit and the safety report.

use crate::SqliteStore;
use crate::crypt::Crypto;
use crate::rows::{self, db, us};
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::safety::{self, TicketHistory};
use careline_core::{Error, Result};
use careline_store::{NewFinding, PastContact, SafetyReport, SafetyReview};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, params};
use std::collections::HashMap;

pub async fn contacts(
    s: &SqliteStore,
    since: Timestamp,
    until: Timestamp,
    after: Option<MessageId>,
    limit: u32,
) -> Result<Vec<PastContact>> {
    s.read(move |c, k| {
        let mut st = c
            .prepare_cached(
                "SELECT m.id, m.org_id, m.ticket_id, t.member_id, m.kind, m.body, m.created_at
                 FROM messages m JOIN threads t ON t.id = m.thread_id
                 WHERE m.id > $1 AND m.kind IN ('member', 'call_note') AND m.created_at >= $2 AND m.created_at < $3
                 ORDER BY m.id LIMIT $4",
            )
            .map_err(db)?;
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        st.query_map(params![after, us(since), us(until), i64::from(limit)], |r| {
            Ok(PastContact {
                message_id: rows::id(r, "id")?,
                org_id: rows::id(r, "org_id")?,
                ticket_id: rows::id(r, "ticket_id")?,
                member_id: rows::id(r, "member_id")?,
                kind: r.get::<_, String>("kind")?.parse().unwrap_or(careline_core::model::MessageKind::Member),
                text: {
                    let body: String = r.get("body")?;
                    let id: MessageId = rows::id(r, "id")?;
                    let org: OrgId = rows::id(r, "org_id")?;
                    k.open(org, &body, &rows::aad("message", &id, "body"))
                        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(std::io::Error::other(e.to_string()))))?
                },
                created_at: rows::ts(r, "created_at")?,
            })
        })
        .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db)
    })
    .await
}

pub async fn contact_count(s: &SqliteStore, since: Timestamp, until: Timestamp) -> Result<i64> {
    s.read(move |c, _| {
        c.query_row(
            "SELECT COUNT(*) FROM messages WHERE kind IN ('member', 'call_note') AND created_at >= $1 AND created_at < $2",
            params![us(since), us(until)],
            |r| r.get(0),
        )
        .map_err(db)
    })
    .await
}

pub async fn histories(
    s: &SqliteStore,
    tickets: Vec<TicketId>,
) -> Result<HashMap<TicketId, TicketHistory>> {
    s.read(move |c, _| {
        let mut asked: Vec<TicketId> = Vec::with_capacity(tickets.len());
        for t in tickets {
            if !asked.contains(&t) {
                asked.push(t);
            }
        }
        let (mut paged, mut cleared_at) = (Vec::new(), Vec::new());
        let mut pages = c
            .prepare_cached("SELECT created_at, acked_at FROM pages WHERE ticket_id = $1")
            .map_err(db)?;
        let mut cleared = c
            .prepare_cached(
                "SELECT at FROM events WHERE ticket_id = $1 AND kind = 'ticket.cleared'",
            )
            .map_err(db)?;
        for t in &asked {
            let found = pages
                .query_map([t.to_string()], |r| {
                    Ok((*t, rows::ts(r, "created_at")?, rows::opt_ts(r, "acked_at")?))
                })
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            paged.extend(found);
            let found = cleared
                .query_map([t.to_string()], |r| Ok((*t, rows::ts(r, "at")?)))
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db)?;
            cleared_at.extend(found);
        }
        Ok(safety::histories(&asked, paged, cleared_at))
    })
    .await
}

pub async fn file(s: &SqliteStore, findings: Vec<NewFinding>, now: Timestamp) -> Result<usize> {
    s.write(move |tx| {
        let mut new = 0;
        for f in findings {
            let id = ReviewId::new();
            let finding = tx.crypto.seal(f.org_id, &f.finding.to_string(), &rows::aad("safety_review", &id, "finding"))?;
            let n = tx
                .conn
                .prepare_cached(
                    "INSERT INTO safety_reviews (id, org_id, message_id, ticket_id, member_id, disposition, finding, protocol_version, status, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        id.to_string(),
                        f.org_id.to_string(),
                        f.message_id.to_string(),
                        f.ticket_id.to_string(),
                        f.member_id.to_string(),
                        f.disposition,
                        finding,
                        f.protocol_version,
                        us(now)
                    ])
                })
                .map_err(db)?;
            if n > 0 {
                new += 1;
                tx.append(f.org_id, now, vec![f.filed(id)])?;
            }
        }
        Ok(new)
    })
    .await
}

fn review(k: &Crypto) -> impl Fn(&Row<'_>) -> rusqlite::Result<SafetyReview> + '_ {
    move |r| review_row(k, r)
}

fn review_row(k: &Crypto, r: &Row<'_>) -> rusqlite::Result<SafetyReview> {
    let f: String = r.get("finding")?;
    let rid: ReviewId = rows::id(r, "id")?;
    let org: OrgId = rows::id(r, "org_id")?;
    let f = k
        .open(org, &f, &rows::aad("safety_review", &rid, "finding"))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                Box::new(std::io::Error::other(e.to_string())),
            )
        })?;
    Ok(SafetyReview {
        id: rows::id(r, "id")?,
        org_id: rows::id(r, "org_id")?,
        message_id: rows::id(r, "message_id")?,
        ticket_id: rows::id(r, "ticket_id")?,
        member_id: rows::id(r, "member_id")?,
        disposition: r.get("disposition")?,
        finding: careline_store::stored_json("safety finding", &f).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        protocol_version: r.get("protocol_version")?,
        status: r.get("status")?,
        resolved_by: rows::opt_id(r, "resolved_by")?,
        resolution: r.get("resolution")?,
        created_at: rows::ts(r, "created_at")?,
        resolved_at: rows::opt_ts(r, "resolved_at")?,
    })
}

pub async fn reviews(
    s: &SqliteStore,
    p: &Principal,
    status: Option<String>,
) -> Result<Vec<SafetyReview>> {
    safety::reviews_request(p, status.as_deref())?;
    let org = p.org_id;
    s.read(move |c, k| {
        let mut st = c
            .prepare_cached("SELECT * FROM safety_reviews WHERE org_id = $1 AND ($2 = '' OR status = $2) ORDER BY created_at DESC LIMIT 1000")
            .map_err(db)?;
        st.query_map(params![org.to_string(), status.unwrap_or_default()], review(k))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)
    })
    .await
}

pub async fn resolve(
    s: &SqliteStore,
    p: &Principal,
    id: ReviewId,
    note: String,
    now: Timestamp,
) -> Result<SafetyReview> {
    let note = safety::resolve_request(p, &note)?;
    let p = p.clone();
    s.write(move |tx| {
        let r = tx
            .conn
            .prepare_cached("SELECT * FROM safety_reviews WHERE id = $1")
            .and_then(|mut st| st.query_row([id.to_string()], review(tx.crypto)).optional())
            .map_err(db)?
            .filter(|r| r.org_id == p.org_id)
            .ok_or(Error::NotFound("safety review"))?;
        let (r, ev) = r.resolve(&p, note, now)?;
        tx.conn
            .prepare_cached("UPDATE safety_reviews SET status = 'resolved', resolved_by = $1, resolution = $2, resolved_at = $3 WHERE id = $4")
            .and_then(|mut st| st.execute(params![p.user_id.to_string(), r.resolution, us(now), id.to_string()]))
            .map_err(db)?;
        tx.append(p.org_id, now, vec![ev])?;
        Ok(r)
    })
    .await
}

pub async fn report(
    s: &SqliteStore,
    p: &Principal,
    since: Timestamp,
    until: Timestamp,
) -> Result<SafetyReport> {
    safety::report_request(p)?;
    let org = p.org_id.to_string();
    s.read(move |c, _| {
        let (a, b) = (us(since), us(until));
        let mut r = SafetyReport::default();
        c.query_row(
            "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE json_extract(payload, '$.disposition') = 'emergency'),
                    COUNT(*) FILTER (WHERE json_extract(payload, '$.disposition') = 'urgent')
             FROM events WHERE org_id = $1 AND kind = 'triage.judged' AND at >= $2 AND at < $3",
            params![org, a, b],
            |row| {
                r.contacts = row.get(0)?;
                r.emergency = row.get(1)?;
                r.urgent = row.get(2)?;
                Ok(())
            },
        )
        .map_err(db)?;
        c.query_row(
            "SELECT COUNT(*), COUNT(acked_at), COUNT(*) FILTER (WHERE level = 'org_alarm') FROM pages WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
            params![org, a, b],
            |row| {
                r.pages = row.get(0)?;
                r.pages_acknowledged = row.get(1)?;
                r.alarms = row.get(2)?;
                Ok(())
            },
        )
        .map_err(db)?;
        let mut st = c
            .prepare("SELECT (acked_at - flagged_at) / 1000, disposition FROM pages WHERE org_id = $1 AND acked_at IS NOT NULL AND flagged_at >= $2 AND flagged_at < $3 ORDER BY 1")
            .map_err(db)?;
        let acks = st
            .query_map(params![org, a, b], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?;
        r.add_acks(acks);
        let mut st = c
            .prepare(
                "SELECT (SELECT MIN(m.created_at) FROM messages m JOIN users u ON u.id = m.author_id
                          WHERE m.ticket_id = f.ticket_id AND m.kind = 'staff' AND u.role IN ('nurse', 'physician') AND m.created_at >= f.flagged_at) - f.flagged_at,
                        f.disposition
                 FROM (SELECT ticket_id, MIN(flagged_at) AS flagged_at, MIN(disposition) AS disposition FROM pages WHERE org_id = $1 AND flagged_at >= $2 AND flagged_at < $3 GROUP BY ticket_id, flagged_at) f",
            )
            .map_err(db)?;
        let replies = st
            .query_map(params![org, a, b], |row| Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, String>(1)?)))
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?;
        r.add_replies(replies);
        c.query_row(
            "SELECT COUNT(*) FILTER (WHERE status = 'open'), COUNT(*) FROM safety_reviews WHERE org_id = $1 AND created_at >= $2 AND created_at < $3",
            params![org, a, b],
            |row| {
                r.open_safety_reviews = row.get(0)?;
                r.failures_to_escalate = row.get(1)?;
                Ok(())
            },
        )
        .map_err(db)?;
        Ok(r)
    })
    .await
}
