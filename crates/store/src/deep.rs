//! Deep verification: what every message, ticket, page and attachment row
//! must be, rebuilt from the event record, compared with the rows as stored.
//!
//! A hash chain proves the events were not edited, but the rows the API
//! serves live beside them: someone holding the database can drop a guard
//! trigger and delete a message, close a ticket or swap two sealed bodies
//! without touching an event. Every such change leaves a row that disagrees
//! with the events that made it. This module holds that comparison once;
//! each backend only reads its rows (one snapshot) and feeds them here:
//! first an organization's events in `seq` order, then its rows, in any
//! order. What the record created but no row holds is reported missing;
//! a row no event created is reported as such.
//!
//! A message body is compared by its text: the backend opens it with the
//! organization's data key (bound to the row's id, so a body moved from
//! another row does not open at all) and its SHA-256 must equal the
//! `text_sha256` of the event that created it. Redaction keeps the sealed
//! text, so redacted messages are checked the same way, and must carry the
//! redaction their `message.redacted` event records.

use careline_core::event::Event;
use careline_core::ids::*;
use careline_core::ingest::text_digest;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Told `(done, total)` now and then while a deep verification runs: rows
/// and events read so far, of all there are.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Items between two progress reports.
const PROGRESS_EVERY: u64 = 1_000;

/// A message row as stored, with its body opened.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub ticket_id: Option<TicketId>,
    pub kind: String,
    /// The opened body, or why it does not open under this row's id with
    /// the organization's data key.
    pub text: std::result::Result<String, String>,
    pub redacted: bool,
}

/// A ticket row as stored.
#[derive(Debug, Clone)]
pub struct TicketRow {
    pub id: TicketId,
    pub thread_id: ThreadId,
    pub member_id: MemberId,
    pub status: String,
    pub priority: String,
    pub queue_id: QueueId,
    pub assignee_id: Option<UserId>,
}

/// A page row as stored.
#[derive(Debug, Clone)]
pub struct PageRow {
    pub id: PageId,
    pub ticket_id: TicketId,
    pub level: String,
    pub disposition: String,
    pub status: String,
    pub acked_by: Option<UserId>,
}

/// An attachment row as stored.
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub id: AttachmentId,
    pub member_id: MemberId,
    pub sha256: String,
    pub size: i64,
    pub content_type: String,
    pub state: String,
    pub message_id: Option<MessageId>,
}

/// Which table a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Message,
    Ticket,
    Page,
    Attachment,
    /// The record itself: an event that cannot be folded (its payload does
    /// not parse, or it changes something no event created).
    Event,
}

impl Table {
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Message => "message",
            Table::Ticket => "ticket",
            Table::Page => "page",
            Table::Attachment => "attachment",
            Table::Event => "event",
        }
    }
}

/// What is wrong with one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record created it (at event `seq`) but no row holds it.
    Missing { seq: i64 },
    /// The row exists but no event created it.
    WithoutEvent,
    /// A field differs from what the events up to `seq` make it.
    Differs {
        field: &'static str,
        stored: String,
        recorded: String,
        seq: i64,
    },
    /// The opened text's SHA-256 is not the one event `seq` recorded.
    TextDiffers { seq: i64 },
    /// The sealed body does not open under this row's id (`why`: the
    /// decryption error, kept for the JSON report).
    Unreadable { why: String },
    /// An event of the record that cannot be applied.
    Record { seq: i64, why: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { seq } => write!(
                f,
                "the record created it (event {seq}) but the row is missing"
            ),
            Problem::WithoutEvent => write!(f, "the row exists but no event created it"),
            Problem::Differs {
                field,
                stored,
                recorded,
                seq,
            } => write!(
                f,
                "{field} is '{stored}' but the record says '{recorded}' (as of event {seq})"
            ),
            Problem::TextDiffers { seq } => write!(
                f,
                "its text does not match the SHA-256 recorded by event {seq}"
            ),
            Problem::Unreadable { .. } => write!(
                f,
                "its body does not open under this row's id with the organization's key: it was altered or moved from another row"
            ),
            Problem::Record { seq, why } => write!(f, "event {seq}: {why}"),
        }
    }
}

/// One row (or event) that disagrees with the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowFinding {
    pub table: Table,
    pub id: String,
    #[serde(flatten)]
    pub problem: Problem,
}

impl std::fmt::Display for RowFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.table.as_str(), self.id, self.problem)
    }
}

/// The deep verification of one organization.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RowReport {
    pub org_id: String,
    pub org_name: String,
    /// Events folded.
    pub events: u64,
    /// Rows compared, per table.
    pub messages: u64,
    pub tickets: u64,
    pub pages: u64,
    pub attachments: u64,
    /// Every row that disagrees, is missing, or exists without its event.
    pub findings: Vec<RowFinding>,
}

impl RowReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

struct ExpMessage {
    seq: i64,
    thread_id: Option<ThreadId>,
    ticket_id: Option<TicketId>,
    kind: String,
    text_sha256: String,
    /// Seq of the `message.redacted` event, if any.
    redacted: Option<i64>,
}

struct ExpTicket {
    created: i64,
    last: i64,
    thread_id: Option<ThreadId>,
    member_id: Option<MemberId>,
    status: String,
    priority: String,
    queue_id: String,
    assignee_id: Option<String>,
}

struct ExpPage {
    created: i64,
    last: i64,
    ticket_id: Option<TicketId>,
    level: String,
    disposition: String,
    status: String,
    acked_by: Option<UserId>,
}

struct ExpAttachment {
    created: i64,
    last: i64,
    member_id: Option<MemberId>,
    sha256: String,
    size: i64,
    content_type: String,
    state: String,
    message_id: Option<String>,
}

/// What one organization's events make of its rows, and what was found so far.
#[derive(Default)]
struct OrgCheck {
    report: RowReport,
    messages: HashMap<MessageId, ExpMessage>,
    tickets: HashMap<TicketId, ExpTicket>,
    pages: HashMap<PageId, ExpPage>,
    attachments: HashMap<AttachmentId, ExpAttachment>,
}

/// A payload's string field, or "" (a field the record lacks compares unequal).
fn text(p: &Value, k: &str) -> String {
    p.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn parse_id<T: std::str::FromStr>(p: &Value, k: &str) -> Option<T> {
    p.get(k)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

impl OrgCheck {
    fn find(&mut self, table: Table, id: impl ToString, problem: Problem) {
        self.report.findings.push(RowFinding {
            table,
            id: id.to_string(),
            problem,
        });
    }

    fn record(&mut self, e: &Event, why: impl Into<String>) {
        self.find(
            Table::Event,
            e.id,
            Problem::Record {
                seq: e.seq,
                why: why.into(),
            },
        );
    }

    /// Apply one event to what the rows must be.
    fn event(&mut self, e: &Event) {
        self.report.events += 1;
        let kind = e.kind.as_str();
        let table = match kind.split('.').next() {
            Some("message" | "call") => Table::Message,
            Some("ticket") => Table::Ticket,
            Some("page") | Some("escalation") => Table::Page,
            Some("attachment") => Table::Attachment,
            _ => return,
        };
        let Ok(p) = serde_json::from_str::<Value>(&e.payload) else {
            self.record(e, format!("the payload of this {kind} event is not JSON"));
            return;
        };
        match table {
            Table::Message => self.message_event(e, &p),
            Table::Ticket => self.ticket_event(e, &p),
            Table::Page => self.page_event(e, &p),
            Table::Attachment => self.attachment_event(e, &p),
            Table::Event => {}
        }
    }

    fn message_event(&mut self, e: &Event, p: &Value) {
        let Some(id) = parse_id::<MessageId>(p, "message_id") else {
            if matches!(
                e.kind.as_str(),
                "message.created" | "call.created" | "message.auto_reply" | "message.redacted"
            ) {
                self.record(e, format!("{} names no message", e.kind));
            }
            return;
        };
        match e.kind.as_str() {
            "message.created" | "call.created" | "message.auto_reply" => {
                let kind = p
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("system")
                    .to_owned();
                let exp = ExpMessage {
                    seq: e.seq,
                    thread_id: e.thread_id,
                    ticket_id: e.ticket_id,
                    kind,
                    text_sha256: text(p, "text_sha256"),
                    redacted: None,
                };
                if self.messages.insert(id, exp).is_some() {
                    self.record(e, format!("message {id} is created a second time"));
                }
            }
            "message.redacted" => {
                let digest = text(p, "text_sha256");
                match self.messages.get_mut(&id) {
                    Some(m) => {
                        m.redacted = Some(e.seq);
                        if m.text_sha256 != digest {
                            let created = m.seq;
                            self.record(e, format!("the redaction of message {id} records another text hash than its creation (event {created})"));
                        }
                    }
                    None => self.record(e, format!("redacts message {id}, which no event created")),
                }
            }
            _ => {}
        }
    }

    fn ticket_event(&mut self, e: &Event, p: &Value) {
        let Some(id) = e.ticket_id else {
            return;
        };
        if e.kind == "ticket.created" {
            let exp = ExpTicket {
                created: e.seq,
                last: e.seq,
                thread_id: e.thread_id,
                member_id: e.member_id,
                status: text(p, "status"),
                priority: text(p, "priority"),
                queue_id: text(p, "queue_id"),
                assignee_id: None,
            };
            if self.tickets.insert(id, exp).is_some() {
                self.record(e, format!("ticket {id} is created a second time"));
            }
            return;
        }
        let change: Option<fn(&mut ExpTicket, &Value)> = match e.kind.as_str() {
            "ticket.status_changed" => Some(|t, p| t.status = text(p, "to")),
            "ticket.priority_raised" | "ticket.priority_lowered" => {
                Some(|t, p| t.priority = text(p, "to"))
            }
            "ticket.cleared" => Some(|t, p| t.priority = text(p, "disposition")),
            "ticket.routed" => Some(|t, p| t.queue_id = text(p, "to_queue")),
            "ticket.assigned" => {
                Some(|t, p| t.assignee_id = p.get("to").and_then(Value::as_str).map(str::to_owned))
            }
            _ => None,
        };
        let Some(change) = change else { return };
        match self.tickets.get_mut(&id) {
            Some(t) => {
                change(t, p);
                t.last = e.seq;
            }
            None => self.record(
                e,
                format!("{} changes ticket {id}, which no event created", e.kind),
            ),
        }
    }

    fn page_event(&mut self, e: &Event, p: &Value) {
        let Some(id) = parse_id::<PageId>(p, "page_id") else {
            return;
        };
        let status = match e.kind.as_str() {
            "page.created" | "escalation.alarm" => {
                let exp = ExpPage {
                    created: e.seq,
                    last: e.seq,
                    ticket_id: e.ticket_id,
                    level: text(p, "level"),
                    disposition: text(p, "disposition"),
                    status: "open".to_owned(),
                    acked_by: None,
                };
                if self.pages.insert(id, exp).is_some() {
                    self.record(e, format!("page {id} is created a second time"));
                }
                return;
            }
            "page.escalated" => "escalated",
            "page.acknowledged" => "acknowledged",
            "page.superseded" => "superseded",
            _ => return,
        };
        match self.pages.get_mut(&id) {
            Some(pg) => {
                pg.status = status.to_owned();
                pg.last = e.seq;
                if status == "acknowledged" {
                    pg.acked_by = e.actor_id;
                }
            }
            None => self.record(
                e,
                format!("{} changes page {id}, which no event created", e.kind),
            ),
        }
    }

    fn attachment_event(&mut self, e: &Event, p: &Value) {
        let Some(id) = parse_id::<AttachmentId>(p, "attachment_id") else {
            return;
        };
        if e.kind == "attachment.quarantined" {
            let exp = ExpAttachment {
                created: e.seq,
                last: e.seq,
                member_id: e.member_id,
                sha256: text(p, "sha256"),
                size: p.get("size").and_then(Value::as_i64).unwrap_or(-1),
                content_type: text(p, "content_type"),
                state: text(p, "state"),
                message_id: None,
            };
            if self.attachments.insert(id, exp).is_some() {
                self.record(e, format!("attachment {id} is created a second time"));
            }
            return;
        }
        match self.attachments.get_mut(&id) {
            Some(a) => {
                // Every attachment event carries the file's state after it.
                if p.get("state").is_some() {
                    a.state = text(p, "state");
                }
                if e.kind == "attachment.attached" {
                    a.message_id = Some(text(p, "message_id"));
                }
                a.last = e.seq;
            }
            None => self.record(
                e,
                format!("{} names attachment {id}, which no event created", e.kind),
            ),
        }
    }

    fn differs(
        &mut self,
        table: Table,
        id: &dyn std::fmt::Display,
        field: &'static str,
        stored: &str,
        recorded: &str,
        seq: i64,
    ) {
        if stored != recorded {
            self.find(
                table,
                id,
                Problem::Differs {
                    field,
                    stored: stored.to_owned(),
                    recorded: recorded.to_owned(),
                    seq,
                },
            );
        }
    }

    fn message(&mut self, r: MessageRow) {
        self.report.messages += 1;
        let Some(m) = self.messages.remove(&r.id) else {
            self.find(Table::Message, r.id, Problem::WithoutEvent);
            return;
        };
        let t = Table::Message;
        let opt = |v: Option<String>| v.unwrap_or_default();
        if let Some(th) = m.thread_id {
            self.differs(
                t,
                &r.id,
                "thread",
                &r.thread_id.to_string(),
                &th.to_string(),
                m.seq,
            );
        }
        if m.ticket_id.is_some() {
            self.differs(
                t,
                &r.id,
                "ticket",
                &opt(r.ticket_id.map(|x| x.to_string())),
                &opt(m.ticket_id.map(|x| x.to_string())),
                m.seq,
            );
        }
        self.differs(t, &r.id, "kind", &r.kind, &m.kind, m.seq);
        match &r.text {
            Ok(body) => {
                if text_digest(body) != m.text_sha256 {
                    self.find(t, r.id, Problem::TextDiffers { seq: m.seq });
                }
            }
            Err(why) => self.find(t, r.id, Problem::Unreadable { why: why.clone() }),
        }
        let (stored, recorded) = (r.redacted, m.redacted.is_some());
        if stored != recorded {
            let word = |b: bool| if b { "redacted" } else { "not redacted" };
            self.find(
                t,
                r.id,
                Problem::Differs {
                    field: "redaction",
                    stored: word(stored).to_owned(),
                    recorded: word(recorded).to_owned(),
                    seq: m.redacted.unwrap_or(m.seq),
                },
            );
        }
    }

    fn ticket(&mut self, r: TicketRow) {
        self.report.tickets += 1;
        let Some(x) = self.tickets.remove(&r.id) else {
            self.find(Table::Ticket, r.id, Problem::WithoutEvent);
            return;
        };
        let t = Table::Ticket;
        if let Some(th) = x.thread_id {
            self.differs(
                t,
                &r.id,
                "thread",
                &r.thread_id.to_string(),
                &th.to_string(),
                x.created,
            );
        }
        if let Some(m) = x.member_id {
            self.differs(
                t,
                &r.id,
                "member",
                &r.member_id.to_string(),
                &m.to_string(),
                x.created,
            );
        }
        self.differs(t, &r.id, "status", &r.status, &x.status, x.last);
        self.differs(t, &r.id, "priority", &r.priority, &x.priority, x.last);
        self.differs(
            t,
            &r.id,
            "queue",
            &r.queue_id.to_string(),
            &x.queue_id,
            x.last,
        );
        let none = || "(nobody)".to_owned();
        self.differs(
            t,
            &r.id,
            "assignee",
            &r.assignee_id.map(|u| u.to_string()).unwrap_or_else(none),
            &x.assignee_id.clone().unwrap_or_else(none),
            x.last,
        );
    }

    fn page(&mut self, r: PageRow) {
        self.report.pages += 1;
        let Some(x) = self.pages.remove(&r.id) else {
            self.find(Table::Page, r.id, Problem::WithoutEvent);
            return;
        };
        let t = Table::Page;
        if let Some(tk) = x.ticket_id {
            self.differs(
                t,
                &r.id,
                "ticket",
                &r.ticket_id.to_string(),
                &tk.to_string(),
                x.created,
            );
        }
        self.differs(t, &r.id, "level", &r.level, &x.level, x.created);
        self.differs(
            t,
            &r.id,
            "disposition",
            &r.disposition,
            &x.disposition,
            x.created,
        );
        self.differs(t, &r.id, "status", &r.status, &x.status, x.last);
        let none = || "(nobody)".to_owned();
        self.differs(
            t,
            &r.id,
            "acknowledged by",
            &r.acked_by.map(|u| u.to_string()).unwrap_or_else(none),
            &x.acked_by.map(|u| u.to_string()).unwrap_or_else(none),
            x.last,
        );
    }

    fn attachment(&mut self, r: AttachmentRow) {
        self.report.attachments += 1;
        let Some(x) = self.attachments.remove(&r.id) else {
            self.find(Table::Attachment, r.id, Problem::WithoutEvent);
            return;
        };
        let t = Table::Attachment;
        if let Some(m) = x.member_id {
            self.differs(
                t,
                &r.id,
                "member",
                &r.member_id.to_string(),
                &m.to_string(),
                x.created,
            );
        }
        self.differs(t, &r.id, "content hash", &r.sha256, &x.sha256, x.created);
        self.differs(
            t,
            &r.id,
            "size",
            &r.size.to_string(),
            &x.size.to_string(),
            x.created,
        );
        self.differs(
            t,
            &r.id,
            "content type",
            &r.content_type,
            &x.content_type,
            x.created,
        );
        self.differs(t, &r.id, "scan state", &r.state, &x.state, x.last);
        let none = || "(none)".to_owned();
        self.differs(
            t,
            &r.id,
            "message",
            &r.message_id.map(|m| m.to_string()).unwrap_or_else(none),
            &x.message_id.clone().unwrap_or_else(none),
            x.last,
        );
    }

    /// Everything the record created that no row was found for.
    fn finish(mut self) -> RowReport {
        let mut missing: Vec<(i64, Table, String)> = Vec::new();
        missing.extend(
            self.messages
                .drain()
                .map(|(id, m)| (m.seq, Table::Message, id.to_string())),
        );
        missing.extend(
            self.tickets
                .drain()
                .map(|(id, t)| (t.created, Table::Ticket, id.to_string())),
        );
        missing.extend(
            self.pages
                .drain()
                .map(|(id, p)| (p.created, Table::Page, id.to_string())),
        );
        missing.extend(
            self.attachments
                .drain()
                .map(|(id, a)| (a.created, Table::Attachment, id.to_string())),
        );
        missing.sort_by_key(|(seq, _, _)| *seq);
        for (seq, table, id) in missing {
            self.find(table, id, Problem::Missing { seq });
        }
        self.report
    }
}

/// The deep verification of a whole database, fed by a backend: for each
/// organization, [`DeepVerifier::organization`], then its events in `seq`
/// order, then its rows.
pub struct DeepVerifier {
    done: Vec<RowReport>,
    current: Option<OrgCheck>,
    seen: u64,
    total: u64,
    progress: Option<Progress>,
}

impl DeepVerifier {
    /// `total`: how many events and rows the backend will feed (for progress).
    pub fn new(total: u64, progress: Option<Progress>) -> Self {
        DeepVerifier {
            done: Vec::new(),
            current: None,
            seen: 0,
            total,
            progress,
        }
    }

    fn tick(&mut self) {
        self.seen += 1;
        if self.seen.is_multiple_of(PROGRESS_EVERY)
            && let Some(p) = &self.progress
        {
            p(self.seen, self.total.max(self.seen));
        }
    }

    fn org(&mut self) -> &mut OrgCheck {
        self.tick();
        self.current.get_or_insert_with(OrgCheck::default)
    }

    /// Start the next organization (finishing the one before).
    pub fn organization(&mut self, id: OrgId, name: &str) {
        if let Some(c) = self.current.take() {
            self.done.push(c.finish());
        }
        let mut c = OrgCheck::default();
        c.report.org_id = id.to_string();
        c.report.org_name = name.to_owned();
        self.current = Some(c);
    }

    pub fn event(&mut self, e: &Event) {
        self.org().event(e);
    }

    pub fn message(&mut self, r: MessageRow) {
        self.org().message(r);
    }

    pub fn ticket(&mut self, r: TicketRow) {
        self.org().ticket(r);
    }

    pub fn page(&mut self, r: PageRow) {
        self.org().page(r);
    }

    pub fn attachment(&mut self, r: AttachmentRow) {
        self.org().attachment(r);
    }

    /// One report per organization, in the order they were fed.
    pub fn finish(mut self) -> Vec<RowReport> {
        if let Some(c) = self.current.take() {
            self.done.push(c.finish());
        }
        if let Some(p) = &self.progress {
            p(self.seen, self.total.max(self.seen));
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careline_core::event::{EventKind, GENESIS_HASH, NewEvent};
    use serde_json::json;

    /// Seals `events` into one organization's chain and folds them.
    fn fold(org: OrgId, events: Vec<NewEvent>) -> DeepVerifier {
        let mut v = DeepVerifier::new(0, None);
        v.organization(org, "Test Clinic");
        let mut prev = GENESIS_HASH.to_owned();
        let at: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        for (i, n) in events.into_iter().enumerate() {
            let e = Event::seal(org, i as i64 + 1, &prev, at, n);
            prev.clone_from(&e.hash);
            v.event(&e);
        }
        v
    }

    struct Ids {
        thread: ThreadId,
        member: MemberId,
        ticket: TicketId,
        team_queue: QueueId,
        clinical_queue: QueueId,
        nurse: UserId,
    }

    fn ids() -> Ids {
        Ids {
            thread: ThreadId::new(),
            member: MemberId::new(),
            ticket: TicketId::new(),
            team_queue: QueueId::new(),
            clinical_queue: QueueId::new(),
            nurse: UserId::new(),
        }
    }

    fn ticket_events(x: &Ids) -> Vec<NewEvent> {
        let on = |k, p| {
            NewEvent::new(k, p)
                .ticket(x.ticket)
                .thread(x.thread)
                .member(x.member)
        };
        vec![
            on(
                EventKind::TicketCreated,
                json!({"status": "new", "priority": "routine", "queue_id": x.team_queue}),
            ),
            on(
                EventKind::TicketPriorityRaised,
                json!({"from": "routine", "to": "urgent"}),
            ),
            on(
                EventKind::TicketRouted,
                json!({"to_queue": x.clinical_queue}),
            ),
            on(
                EventKind::TicketAssigned,
                json!({"from": null, "to": x.nurse}),
            ),
            on(
                EventKind::TicketStatusChanged,
                json!({"from": "new", "to": "open"}),
            ),
        ]
    }

    fn ticket_row(x: &Ids) -> TicketRow {
        TicketRow {
            id: x.ticket,
            thread_id: x.thread,
            member_id: x.member,
            status: "open".into(),
            priority: "urgent".into(),
            queue_id: x.clinical_queue,
            assignee_id: Some(x.nurse),
        }
    }

    #[test]
    fn a_ticket_row_that_follows_its_events_agrees() {
        let x = ids();
        let mut v = fold(OrgId::new(), ticket_events(&x));
        v.ticket(ticket_row(&x));
        let r = v.finish();
        assert_eq!(r[0].findings, vec![], "{r:?}");
        assert_eq!((r[0].events, r[0].tickets), (5, 1));
    }

    #[test]
    fn a_ticket_changed_beside_its_events_is_named_field_by_field() {
        let x = ids();
        let mut v = fold(OrgId::new(), ticket_events(&x));
        v.ticket(TicketRow {
            status: "closed".into(),
            priority: "routine".into(),
            assignee_id: None,
            ..ticket_row(&x)
        });
        let r = v.finish();
        let fields: Vec<_> = r[0]
            .findings
            .iter()
            .map(|f| match &f.problem {
                Problem::Differs {
                    field, recorded, ..
                } => format!("{field}={recorded}"),
                p => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(
            fields,
            [
                "status=open".to_owned(),
                "priority=urgent".to_owned(),
                format!("assignee={}", x.nurse)
            ]
        );
        assert!(
            r[0].findings[0]
                .to_string()
                .contains("status is 'closed' but the record says 'open' (as of event 5)"),
            "{}",
            r[0].findings[0]
        );
    }

    #[test]
    fn a_missing_row_and_a_row_without_event_are_both_reported() {
        let x = ids();
        let mut v = fold(OrgId::new(), ticket_events(&x));
        let stray = TicketId::new();
        v.ticket(TicketRow {
            id: stray,
            ..ticket_row(&x)
        });
        let r = v.finish();
        assert_eq!(
            r[0].findings,
            vec![
                RowFinding {
                    table: Table::Ticket,
                    id: stray.to_string(),
                    problem: Problem::WithoutEvent,
                },
                RowFinding {
                    table: Table::Ticket,
                    id: x.ticket.to_string(),
                    problem: Problem::Missing { seq: 1 },
                },
            ]
        );
    }

    #[test]
    fn a_redacted_message_keeps_its_hash_and_must_carry_its_redaction() {
        let x = ids();
        let m = MessageId::new();
        let digest = text_digest("call me back please");
        let events = vec![
            NewEvent::new(
                EventKind::MessageCreated,
                json!({"message_id": m, "kind": "member", "text_sha256": digest}),
            )
            .thread(x.thread)
            .ticket(x.ticket),
            NewEvent::new(
                EventKind::MessageRedacted,
                json!({"message_id": m, "reason": "wrong member", "text_sha256": digest}),
            ),
        ];
        let row = |text: &str, redacted| MessageRow {
            id: m,
            thread_id: x.thread,
            ticket_id: Some(x.ticket),
            kind: "member".into(),
            text: Ok(text.into()),
            redacted,
        };
        let mut v = fold(OrgId::new(), events.clone());
        v.message(row("call me back please", true));
        assert_eq!(v.finish()[0].findings, vec![]);

        let mut v = fold(OrgId::new(), events.clone());
        v.message(row("call me back please", false));
        let r = v.finish();
        assert!(
            matches!(
                &r[0].findings[..],
                [RowFinding {
                    problem: Problem::Differs {
                        field: "redaction",
                        seq: 2,
                        ..
                    },
                    ..
                }]
            ),
            "{r:?}"
        );

        let mut v = fold(OrgId::new(), events);
        v.message(row("call me back tomorrow", true));
        let r = v.finish();
        assert_eq!(
            r[0].findings.iter().map(|f| &f.problem).collect::<Vec<_>>(),
            [&Problem::TextDiffers { seq: 1 }]
        );
    }

    #[test]
    fn a_change_to_something_no_event_created_is_a_finding_of_the_record() {
        let x = ids();
        let v = fold(
            OrgId::new(),
            vec![
                NewEvent::new(EventKind::TicketStatusChanged, json!({"to": "closed"}))
                    .ticket(x.ticket),
                NewEvent::new(
                    EventKind::PageAcknowledged,
                    json!({"page_id": PageId::new()}),
                ),
            ],
        );
        let r = v.finish();
        assert_eq!(r[0].findings.len(), 2, "{r:?}");
        assert!(r[0].findings.iter().all(|f| f.table == Table::Event));
        assert!(
            r[0].findings[0]
                .to_string()
                .contains("event 1: ticket.status_changed changes ticket"),
            "{}",
            r[0].findings[0]
        );
    }
}
