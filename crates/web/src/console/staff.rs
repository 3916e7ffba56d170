//! The staff console's work pages: queues with counts and the ticket list
//! (most urgent first, then by SLA due time) with filters; one ticket with
//! its thread, the member's context and the ticket's side panel with every
//! action; and the live escalation banner with acknowledgement.

use super::i18n::Lang;
use super::{
    PageError, PageResult, Viewer, console_frame, countdown, require_staff, role_label, thread,
    when,
};
use crate::AppState;
use crate::privacy::shape;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use careline_core::Disposition;
use careline_core::escalation::{Page, PageStatus};
use careline_core::ids::{MemberId, QueueId, TicketId, UserId};
use careline_core::model::{Ticket, TicketStatus, User};
use careline_store::{QueueSummary, TicketFilter};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

/// The list's filters, from the query string (empty means any).
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    queue: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    /// `pending`: only tickets whose nurse-review mark waits for a clinician.
    review: Option<String>,
}

impl Filters {
    fn to_filter(&self) -> TicketFilter {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        TicketFilter {
            queue: some(&self.queue)
                .and_then(|q| q.parse::<Uuid>().ok())
                .map(QueueId),
            status: some(&self.status).and_then(|s| s.parse::<TicketStatus>().ok()),
            priority: some(&self.priority).and_then(|p| p.parse::<Disposition>().ok()),
            member: None,
            review_pending: self.review.as_deref() == Some("pending"),
            limit: 300,
        }
    }
    fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("queue", &self.queue),
            ("status", &self.status),
            ("priority", &self.priority),
            ("review", &self.review),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                // Values are UUIDs and enum names; keep only their safe characters.
                let v: String = v
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join("&")
    }
}

/// Names of the organization's staff and members, for showing who is who
/// on work the viewer may already see.
struct Names {
    users: Vec<User>,
    members: HashMap<MemberId, String>,
}

impl Names {
    /// Staff names, and the names of just the members `shown` (the members
    /// of the rows this page shows its viewer, already authorized).
    async fn load(
        s: &AppState,
        v: &Viewer,
        shown: impl IntoIterator<Item = MemberId>,
    ) -> Result<Names, PageError> {
        let users = s.store.users(v.p.org_id).await?;
        let members = s
            .store
            .member_names(v.p.org_id, shown.into_iter().collect())
            .await?;
        Ok(Names { users, members })
    }
    fn user(&self, id: UserId) -> String {
        self.users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| "someone".into())
    }
    fn member(&self, id: MemberId) -> String {
        self.members
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "a member".into())
    }
    fn staff(&self) -> impl Iterator<Item = &User> {
        self.users
            .iter()
            .filter(|u| u.role.works_queues() && !u.disabled)
    }
}

fn badge(d: Disposition) -> Markup {
    html! { span class={"badge " (d.as_str())} { (d.as_str()) } }
}

fn status_text(s: TicketStatus) -> String {
    s.as_str().replace('_', " ")
}

const LIVE_TICKET_EVENTS: &str = "ticket.created ticket.status_changed ticket.assigned ticket.routed \
ticket.priority_raised ticket.priority_lowered ticket.cleared message.created";

pub async fn queues_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(f): Query<Filters>,
) -> PageResult {
    require_staff(&v)?;
    if !v.p.role.works_queues() {
        return Ok(axum::response::Redirect::to(super::landing(v.p.role)).into_response());
    }
    let queues = s.store.queues(&v.p).await?;
    let list = tickets_table(&s, &v, &f).await?;
    let q = f.query();
    let current_queue = f.queue.clone().unwrap_or_default();
    let main = html! {
        div class="work" {
            aside class="queues" aria-labelledby="queues-h" {
                h2 id="queues-h" { "Queues" }
                ul {
                    li { a href="/console" aria-current=[current_queue.is_empty().then_some("page")] { "All my queues" } }
                    @for qs in &queues { (queue_link(qs, &current_queue)) }
                }
            }
            main id="main" {
                h1 { "Tickets" }
                form class="filters" method="get" action="/console" {
                    @if !current_queue.is_empty() { input type="hidden" name="queue" value=(current_queue); }
                    div class="field inline" {
                        label for="f-status" { "Status" }
                        select id="f-status" name="status" {
                            option value="" { "Any" }
                            @for st in TicketStatus::ALL {
                                option value=(st.as_str()) selected[f.status.as_deref() == Some(st.as_str())] { (status_text(st)) }
                            }
                        }
                    }
                    div class="field inline" {
                        label for="f-review" { "Nurse review" }
                        select id="f-review" name="review" {
                            option value="" { "Any" }
                            option value="pending" selected[f.review.as_deref() == Some("pending")] { "Waiting for a clinician" }
                        }
                    }
                    div class="field inline" {
                        label for="f-priority" { "Priority" }
                        select id="f-priority" name="priority" {
                            option value="" { "Any" }
                            @for d in ["emergency", "urgent", "routine"] {
                                option value=(d) selected[f.priority.as_deref() == Some(d)] { (d) }
                            }
                        }
                    }
                    button type="submit" { "Filter" }
                }
                div id="ticket-list" data-fragment={"/console/fragments/tickets?" (q)} data-on=(LIVE_TICKET_EVENTS) aria-live="polite" {
                    (list)
                }
            }
        }
    };
    Ok(console_frame(&v, "Queues", "/console", main).into_response())
}

fn queue_link(qs: &QueueSummary, current: &str) -> Markup {
    let id = qs.queue.id.0.to_string();
    html! {
        li {
            a href={"/console?queue=" (id)} aria-current=[(id == current).then_some("page")] {
                span { (qs.queue.name) }
                span class="counts" {
                    span title="open" { (qs.open) " open" }
                    @if qs.emergency > 0 { " " span class="badge emergency" { (qs.emergency) } }
                    @if qs.urgent > 0 { " " span class="badge urgent" { (qs.urgent) } }
                    @if qs.unassigned > 0 { " · " (qs.unassigned) " unassigned" }
                }
            }
        }
    }
}

async fn tickets_table(s: &AppState, v: &Viewer, f: &Filters) -> Result<Markup, PageError> {
    let now = s.clock.now();
    let tickets = s.store.tickets(&v.p, f.to_filter(), now).await?;
    let names = Names::load(s, v, tickets.iter().map(|(t, _)| t.member_id)).await?;
    Ok(html! {
        @if tickets.is_empty() {
            p { "No tickets match." }
        } @else {
            div class="table-wrap" {
                table class="tickets" {
                    caption class="sr-only" { "Tickets, most urgent first, then by the next SLA deadline" }
                    thead { tr {
                        th scope="col" { "Priority" }
                        th scope="col" { "Member" }
                        th scope="col" { "Status" }
                        th scope="col" { "Queue" }
                        th scope="col" { "Assignee" }
                        th scope="col" { "Next due" }
                        th scope="col" { "Opened" }
                    } }
                    tbody {
                        @for (t, q) in &tickets {
                            tr class={ @if t.red_flag_uncleared() { "flag" } } {
                                td {
                                    (badge(t.priority))
                                    @if t.red_flag_uncleared() { " " span class="flag-label" { "red flag" } }
                                    @else if t.review_pending() { " " span class="review-label" { "nurse review" } }
                                }
                                td { a href={"/console/tickets/" (t.id.0)} { (names.member(t.member_id)) } }
                                td { (status_text(t.status)) }
                                td { (q.name) }
                                td { (t.assignee_id.map(|a| names.user(a)).unwrap_or_else(|| "—".into())) }
                                td { (countdown(next_due(t), "")) }
                                td { (when(t.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn next_due(t: &Ticket) -> Option<jiff::Timestamp> {
    if t.sla.resolved_at.is_some() {
        return None;
    }
    if t.sla.first_response_at.is_none() {
        return t.sla.first_response_due;
    }
    t.sla.next_response_due.or(t.sla.resolution_due)
}

pub async fn tickets_fragment(
    State(s): State<AppState>,
    v: Viewer,
    Query(f): Query<Filters>,
) -> PageResult {
    require_staff(&v)?;
    Ok(tickets_table(&s, &v, &f).await?.into_response())
}

/// The red banner: pages waiting for this user, with acknowledgement.
pub async fn banner_fragment(State(s): State<AppState>, v: Viewer) -> PageResult {
    require_staff(&v)?;
    let pages: Vec<Page> = s
        .store
        .my_pages(&v.p)
        .await?
        .into_iter()
        .filter(|p| p.status == PageStatus::Open || p.deadline.is_none())
        .filter(|p| p.acked_at.is_none())
        .collect();
    let names = Names::load(&s, &v, pages.iter().map(|p| p.member_id)).await?;
    Ok(html! {
        @if !pages.is_empty() {
            section class="banner" aria-labelledby="banner-h" {
                h2 id="banner-h" { "Escalations need you (" (pages.len()) ")" }
                ul {
                    @for (i, p) in pages.iter().enumerate() {
                        li {
                            (badge(p.disposition)) " "
                            strong { (names.member(p.member_id)) } ": " (p.reason)
                            " · " (p.level.as_str().replace('_', " ")) " page "
                            @if let Some(d) = p.deadline { (countdown(Some(d), "ack")) }
                            " "
                            a href={"/console/tickets/" (p.ticket_id.0)} { "Open ticket" }
                            " "
                            button type="button" class="ack" data-post={"/api/v1/pages/" (p.id.0) "/ack"}
                                data-done="Acknowledged"
                                aria-keyshortcuts=[(i == 0).then_some("Alt+Shift+A")] {
                                "Acknowledge" @if i == 0 { " (Alt+Shift+A)" }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_response())
}

/// Which part of the ticket page to render (the whole page, or a live part).
#[derive(Debug, Default, Deserialize)]
pub struct Part {
    part: Option<String>,
}

struct TicketData {
    t: Ticket,
    queue: careline_core::model::Queue,
    msgs: Vec<careline_core::model::Message>,
    files: Vec<careline_core::attachment::Attachment>,
    pages: Vec<Page>,
    collaborators: Vec<careline_store::Collaborator>,
    names: Names,
}

async fn load_ticket(s: &AppState, v: &Viewer, id: Uuid) -> Result<TicketData, PageError> {
    let now = s.clock.now();
    let (t, queue) = s.store.ticket(&v.p, TicketId(id), now).await?;
    let (_, msgs) = s.store.thread(&v.p, t.thread_id, now).await?;
    let files = s.store.thread_attachments(&v.p, t.thread_id).await?;
    let pages = s.store.ticket_pages(&v.p, t.id, now).await?;
    let collaborators = s
        .store
        .collaborators(&v.p, t.thread_id)
        .await
        .unwrap_or_default();
    let names = Names::load(s, v, [t.member_id]).await?;
    Ok(TicketData {
        t,
        queue,
        msgs,
        files,
        pages,
        collaborators,
        names,
    })
}

fn thread_part(d: &TicketData) -> Markup {
    let list: Vec<&careline_core::model::Message> = d.msgs.iter().collect();
    thread::messages(&list, &d.files, true, Lang::En)
}

fn panel_part(d: &TicketData, now: jiff::Timestamp) -> Markup {
    let t = &d.t;
    html! {
        dl class="facts" {
            dt { "Status" } dd { (status_text(t.status)) }
            dt { "Priority" } dd { (badge(t.priority)) }
            dt { "Queue" } dd { (d.queue.name) }
            dt { "Assignee" } dd { (t.assignee_id.map(|a| d.names.user(a)).unwrap_or_else(|| "unassigned".into())) }
            dt { "First response" } dd {
                @if let Some(at) = t.sla.first_response_at { "answered " (when(at)) } @else { (countdown(t.sla.first_response_due, "")) }
            }
            @if t.sla.next_response_due.is_some() {
                dt { "Next response" } dd { (countdown(t.sla.next_response_due, "")) }
            }
            dt { "Resolution" } dd {
                @if let Some(at) = t.sla.resolved_at { "resolved " (when(at)) } @else { (countdown(t.sla.resolution_due, "")) }
            }
        }
        @let breaches = careline_core::sla::breaches(&t.sla, now);
        @if !breaches.is_empty() {
            p class="notice warn" { "SLA missed: " (format!("{breaches:?}").to_lowercase()) }
        }
        h3 { "Escalation" }
        @if t.red_flag_uncleared() {
            p class="notice interlock" { "Red flag uncleared: only a nurse or physician may solve, close, downgrade or book a routine visit until a clinical decision is recorded." }
        }
        @if let Some(c) = &t.clearance {
            p class="notice ok" {
                "Cleared by " (c.by_name) " (" (role_label(c.role)) ") as " (c.disposition.as_str()) " " (when(c.at)) ": " (c.note)
            }
        }
        @if let Some(r) = &t.review {
            @if let Some(c) = &r.cleared {
                p class="notice ok" {
                    "Nurse review recorded by " (c.by_name) " (" (role_label(c.role)) ") " (when(c.at)) ": " (c.note)
                }
            } @else {
                p class="notice interlock" {
                    "Nurse review: the message reads as clinical ("
                    (r.words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", "))
                    ") although the triage engine judged it routine. A nurse or physician reviews it "
                    (countdown(Some(r.due_at), ""))
                    "; until then only a clinician may book a routine visit."
                    @if r.routed { " The organization routes these to the clinical queue." }
                }
            }
        }
        @if d.pages.is_empty() {
            p class="muted" { "No pages." }
        } @else {
            ol class="chain" {
                @for p in &d.pages {
                    li class={"page " (p.status.as_str())} {
                        strong { (p.level.as_str().replace('_', " ")) } " → "
                        (p.targets.iter().map(|u| d.names.user(*u)).collect::<Vec<_>>().join(", "))
                        " · " (p.status.as_str())
                        " · sent " (when(p.created_at))
                        @if let (Some(by), Some(at)) = (p.acked_by, p.acked_at) { " · acknowledged by " (d.names.user(by)) " " (when(at)) }
                        @else if p.status == PageStatus::Open { " · " (countdown(p.deadline, "ack")) }
                    }
                }
            }
        }
        h3 { "Collaborators" }
        @let active: Vec<_> = d.collaborators.iter().filter(|c| c.revoked_at.is_none() && c.expires_at > now).collect();
        @if active.is_empty() {
            p class="muted" { "Nobody tagged in." }
        } @else {
            ul {
                @for c in &active {
                    li { (c.name) " — " (c.reason) " (until " (when(c.expires_at)) ")" }
                }
            }
        }
    }
}

fn form_notice() -> Markup {
    html! { div class="notice" role="alert" data-error hidden {} }
}

fn actions(d: &TicketData, v: &Viewer) -> Markup {
    let t = &d.t;
    let id = t.id.0;
    let me = v.p.user_id.0;
    let clinical = v.p.role.is_clinical();
    html! {
        section class="card" aria-labelledby="act-assign" {
            h3 id="act-assign" { "Assign" }
            form data-api={"/api/v1/tickets/" (id) "/assign"} {
                div class="field" {
                    label for="assignee" { "Assignee" }
                    select id="assignee" name="staff_id" data-type="uuid-or-null" {
                        option value="" { "Unassigned" }
                        option value=(me) selected[t.assignee_id.map(|a| a.0) == Some(me)] { "Me (" (v.p.name) ")" }
                        @for u in d.names.staff().filter(|u| u.id.0 != me) {
                            option value=(u.id.0) selected[t.assignee_id == Some(u.id)] { (u.name) " — " (role_label(u.role)) }
                        }
                    }
                }
                (form_notice())
                button type="submit" { "Assign" }
            }
        }
        section class="card" aria-labelledby="act-status" {
            h3 id="act-status" { "Change status" }
            form data-api={"/api/v1/tickets/" (id) "/transitions"} {
                div class="field" {
                    label for="to" { "New status" }
                    select id="to" name="to" {
                        @for st in TicketStatus::ALL {
                            @if st != t.status { option value=(st.as_str()) { (status_text(st)) } }
                        }
                    }
                }
                div class="field" {
                    label for="reason" { "Reason (optional)" }
                    input id="reason" name="reason" data-optional maxlength="2000";
                }
                (form_notice())
                button type="submit" { "Change status" }
            }
        }
        @if clinical {
            section class="card clinical" aria-labelledby="act-clear" {
                h3 id="act-clear" { "Clinical clearance" }
                form data-api={"/api/v1/tickets/" (id) "/clearance"} {
                    div class="field" {
                        label for="clear-d" { "Your disposition" }
                        select id="clear-d" name="disposition" {
                            @for d in ["emergency", "urgent", "routine"] { option value=(d) { (d) } }
                        }
                    }
                    div class="field" {
                        label for="clear-note" { "Decision and reasons" }
                        textarea id="clear-note" name="note" rows="3" required {}
                    }
                    (form_notice())
                    button type="submit" class="primary" { "Record clearance" }
                }
            }
        }
        @if clinical {
            @let contacts: Vec<&careline_core::model::Message> = d.msgs.iter().filter(|m| m.ticket_id == Some(t.id) && m.triage.is_some() && m.redaction.is_none() && matches!(m.kind, careline_core::model::MessageKind::Member | careline_core::model::MessageKind::CallNote)).collect();
            @if !contacts.is_empty() {
                section class="card clinical" aria-labelledby="act-mark" {
                    h3 id="act-mark" { "Triage judgement wrong?" }
                    form data-api={"/api/v1/tickets/" (id) "/judgement-marks"} {
                        div class="field" {
                            label for="mark-msg" { "Message" }
                            select id="mark-msg" name="message_id" {
                                @for m in contacts.iter().rev() {
                                    option value=(m.id.0) {
                                        (m.triage.as_ref().map_or("", |j| j.disposition.as_str())) ": "
                                        (m.text.chars().take(60).collect::<String>())
                                    }
                                }
                            }
                        }
                        div class="field" {
                            label for="mark-should" { "It should have been" }
                            select id="mark-should" name="should_be" {
                                @for d in ["emergency", "urgent", "routine"] { option value=(d) { (d) } }
                            }
                        }
                        div class="field" {
                            label for="mark-note" { "Why" }
                            textarea id="mark-note" name="note" rows="2" required {}
                        }
                        (form_notice())
                        button type="submit" { "Mark judgement" }
                    }
                }
            }
        }
        @if clinical && t.review_pending() {
            section class="card clinical" aria-labelledby="act-review" {
                h3 id="act-review" { "Nurse review" }
                form data-api={"/api/v1/tickets/" (id) "/review"} {
                    div class="field" {
                        label for="review-note" { "What you read and decided" }
                        textarea id="review-note" name="note" rows="3" required {}
                    }
                    (form_notice())
                    button type="submit" class="primary" { "Record review" }
                }
            }
        }
        section class="card" aria-labelledby="act-priority" {
            h3 id="act-priority" { "Priority" }
            form data-api={"/api/v1/tickets/" (id) "/priority"} {
                div class="field" {
                    label for="prio" { "Priority" }
                    select id="prio" name="priority" {
                        @for d in ["emergency", "urgent", "routine"] { option value=(d) selected[t.priority.as_str() == d] { (d) } }
                    }
                }
                div class="field" {
                    label for="prio-reason" { "Reason" }
                    input id="prio-reason" name="reason" required;
                }
                (form_notice())
                button type="submit" { "Set priority" }
            }
        }
        section class="card" aria-labelledby="act-visit" {
            h3 id="act-visit" { "Book a visit" }
            form data-api={"/api/v1/tickets/" (id) "/visits"} {
                div class="field" {
                    label for="visit-kind" { "Kind" }
                    select id="visit-kind" name="kind" {
                        option value="routine" { "Routine office visit" }
                        option value="same_day" { "Same day" }
                        option value="urgent_care" { "Urgent care" }
                        option value="ed" { "Emergency department" }
                    }
                }
                div class="field" {
                    label for="visit-at" { "When" }
                    input id="visit-at" name="at" type="datetime-local" data-type="datetime" required;
                }
                (form_notice())
                button type="submit" { "Book" }
            }
        }
        section class="card" aria-labelledby="act-tag" {
            h3 id="act-tag" { "Tag a colleague" }
            form data-api={"/api/v1/threads/" (t.thread_id.0) "/collaborators"} {
                div class="field" {
                    label for="tag-user" { "Colleague" }
                    select id="tag-user" name="user_id" {
                        @for u in d.names.staff().filter(|u| u.id.0 != me) {
                            option value=(u.id.0) { (u.name) " — " (role_label(u.role)) }
                        }
                    }
                }
                div class="field" {
                    label for="tag-reason" { "Why they are needed" }
                    input id="tag-reason" name="reason" required;
                }
                (form_notice())
                button type="submit" { "Tag in" }
            }
        }
    }
}

async fn member_panel(s: &AppState, v: &Viewer, d: &TicketData) -> Markup {
    let now = s.clock.now();
    let profile = s
        .store
        .member(&v.p, d.t.member_id, now)
        .await
        .map(|(m, g)| shape(&m, v.p.role, g));
    let past = s
        .store
        .tickets(
            &v.p,
            TicketFilter {
                queue: None,
                status: None,
                priority: None,
                member: Some(d.t.member_id),
                review_pending: false,
                limit: 20,
            },
            now,
        )
        .await
        .unwrap_or_default();
    let list = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => s.clone(),
                        other => other
                            .get("item")
                            .and_then(|x| x.as_str())
                            .map(|item| {
                                let cat = other
                                    .get("category")
                                    .and_then(|c| c.as_str())
                                    .unwrap_or_default();
                                format!("{item} ({})", cat.replace('_', " "))
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    html! {
        @match &profile {
            Ok(m) => {
                h2 id="member-h" { (m.name) }
                dl class="facts" {
                    @if let Some(dob) = &m.date_of_birth { dt { "Born" } dd { (dob) } }
                    @if let Some(sex) = &m.sex { dt { "Sex" } dd { (sex) } }
                    dt { "Language" } dd { (m.language) }
                    @if let Some(p) = &m.plan { dt { "Plan" } dd { (p) } }
                    @if let Some(p) = &m.phone { dt { "Phone" } dd { (p) } }
                    @if let Some(e) = &m.email { dt { "E-mail" } dd { (e) } }
                    dt { "Access" } dd { (m.access.replace('_', " ")) }
                }
                @if let Some(h) = &m.health_markers {
                    h3 { "Health markers" }
                    @for (label, key) in [("Conditions", "conditions"), ("Medications", "medications"), ("Allergies", "allergies")] {
                        @let items = list(h.get(key));
                        p { strong { (label) ": " } @if items.is_empty() { "none recorded" } @else { (items.join(", ")) } }
                    }
                } @else {
                    p class="muted" { "Health markers are shown to clinicians." }
                }
                @let sensitive = list(m.sensitive.as_ref());
                @if !sensitive.is_empty() {
                    p { strong { "Sensitive: " } (sensitive.join(", ")) }
                }
            }
            Err(e) => {
                h2 id="member-h" { "Member" }
                p class="muted" { (format!("{}", e)) }
            }
        }
        h3 { "Past tickets" }
        @let earlier: Vec<_> = past.iter().filter(|(t, _)| t.id != d.t.id).collect();
        @if earlier.is_empty() { p class="muted" { "None." } }
        ul class="past" {
            @for (t, _) in earlier {
                li { a href={"/console/tickets/" (t.id.0)} { (badge(t.priority)) " " (status_text(t.status)) " · " (when(t.created_at)) } }
            }
        }
    }
}

pub async fn ticket_page(State(s): State<AppState>, v: Viewer, Path(id): Path<Uuid>) -> PageResult {
    require_staff(&v)?;
    let d = match load_ticket(&s, &v, id).await {
        Ok(d) => d,
        Err(PageError(e)) if super::glass::may_offer(&v, &e) => {
            let member = s.store.ticket_member(&v.p, TicketId(id)).await?;
            let detail = match &e {
                careline_core::Error::Forbidden { detail, .. } => detail.as_str(),
                _ => "",
            };
            return Ok(super::glass::offer(&s, &v, member, "this ticket", detail));
        }
        Err(e) => return Err(e),
    };
    let now = s.clock.now();
    let member = member_panel(&s, &v, &d).await;
    let frag = format!("/console/tickets/{id}/fragment");
    let title = format!("{} ticket", d.t.priority.as_str());
    let main = html! {
        main id="main" class="ticket" {
            h1 class="sr-only" { "Ticket" }
            section class="thread-col" aria-labelledby="thread-h" {
                h2 id="thread-h" { "Conversation with " (d.names.member(d.t.member_id)) }
                (thread::judgement(&d.t.triage))
                div data-fragment={(frag) "?part=thread"} data-on="message.created message.auto_reply" data-ticket=(id) {
                    (thread_part(&d))
                }
                section class="card" aria-labelledby="reply-h" {
                    h3 id="reply-h" { "Reply to the member" }
                    form data-api={"/api/v1/tickets/" (id) "/replies"} {
                        input type="hidden" name="internal" value="false" data-type="bool";
                        div class="field" {
                            label for="reply-text" { "Reply (the member sees this)" }
                            textarea id="reply-text" name="text" rows="4" required {}
                        }
                        div class="field" {
                            label for="reply-files" { "Attach files (optional; scanned before anyone can open them)" }
                            input id="reply-files" type="file" multiple data-upload-for=(d.t.member_id.0)
                                accept=".jpg,.jpeg,.png,.heic,.heif,.webp,.pdf,.txt";
                        }
                        (form_notice())
                        button type="submit" class="primary" { "Send reply" }
                    }
                }
                section class="card note" aria-labelledby="note-h" {
                    h3 id="note-h" { "Internal note" }
                    form data-api={"/api/v1/tickets/" (id) "/replies"} {
                        input type="hidden" name="internal" value="true" data-type="bool";
                        div class="field" {
                            label for="note-text" { "Note (staff only)" }
                            textarea id="note-text" name="text" rows="3" required {}
                        }
                        (form_notice())
                        button type="submit" { "Add note" }
                    }
                }
            }
            aside class="member-col" aria-labelledby="member-h" {
                (member)
            }
            aside class="panel-col" aria-labelledby="panel-h" {
                h2 id="panel-h" { "Ticket" }
                div data-fragment={(frag) "?part=panel"} data-ticket=(id)
                    data-on="ticket.status_changed ticket.assigned ticket.routed ticket.priority_raised ticket.priority_lowered ticket.cleared page.created page.escalated page.acknowledged thread.collaborator_added visit.booked" {
                    (panel_part(&d, now))
                }
                (actions(&d, &v))
            }
        }
    };
    Ok(console_frame(&v, &title, "", main).into_response())
}

pub async fn ticket_fragment(
    State(s): State<AppState>,
    v: Viewer,
    Path(id): Path<Uuid>,
    Query(part): Query<Part>,
) -> PageResult {
    require_staff(&v)?;
    let d = load_ticket(&s, &v, id).await?;
    let m = match part.part.as_deref() {
        Some("panel") => panel_part(&d, s.clock.now()),
        _ => thread_part(&d),
    };
    Ok(m.into_response())
}
