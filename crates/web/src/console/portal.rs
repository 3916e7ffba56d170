//! The member portal: the inbox of conversations, one conversation with a
//! reply box, compose with attachments, the emergency guidance when the
//! automatic reply fires, "who looked at my record", and switching between
//! one's own account and the members one is a caregiver for.

use super::i18n::{Lang, t};
use super::{PageError, PageResult, Viewer, document, thread, when};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use careline_core::Error;
use careline_core::authz::ProxyScope;
use careline_core::ids::{MemberId, ThreadId};
use careline_core::model::{Message, MessageKind, Ticket, TicketStatus};
use careline_store::TicketFilter;
use maud::{Markup, html};
use uuid::Uuid;

/// Whose portal the reader is looking at, and how to say things.
pub(super) struct Portal {
    pub(super) member: MemberId,
    /// Shown in the switch; `None` for a member acting for themselves.
    pub(super) acting_name: Option<String>,
    /// Everyone the reader can act for: (member, label).
    choices: Vec<(MemberId, String)>,
    pub(super) lang: Lang,
    /// Sent with a message when the reader is a caregiver.
    send_member_id: Option<Uuid>,
}

pub(super) async fn portal(s: &AppState, v: &Viewer) -> Result<Portal, PageError> {
    let p = &v.p;
    if p.role.is_staff() {
        return Err(Error::forbidden(
            "members-only",
            "the portal is for members and caregivers; staff use the console at /console",
        )
        .into());
    }
    let mut choices: Vec<(MemberId, String)> = Vec::new();
    if let Some(own) = p.member_id {
        choices.push((own, String::new()));
    }
    if !p.proxy_for.is_empty() {
        let grants = s.store.my_proxy_grants(p, s.clock.now()).await?;
        for (m, _) in &p.proxy_for {
            let name = grants
                .iter()
                .find(|g| g.member_id == *m)
                .map(|g| g.member_name.clone())
                .unwrap_or_else(|| m.0.to_string());
            choices.push((*m, name));
        }
    }
    let chosen = v
        .acting_cookie
        .as_deref()
        .and_then(|c| c.parse::<Uuid>().ok())
        .and_then(|id| choices.iter().find(|(m, _)| m.0 == id).cloned());
    let Some((member, label)) = chosen.or_else(|| choices.first().cloned()) else {
        return Err(Error::forbidden("members-only", "this account acts for no member").into());
    };
    let own = p.member_id == Some(member);
    let profile_lang = if own {
        // A member reading their own profile is not a PHI access by staff.
        s.store
            .member(p, member, s.clock.now())
            .await
            .ok()
            .map(|(m, _)| m.language)
    } else {
        None
    };
    let lang = v
        .lang_cookie
        .as_deref()
        .or(profile_lang.as_deref())
        .and_then(Lang::parse)
        .unwrap_or(Lang::En);
    Ok(Portal {
        member,
        acting_name: (!own).then_some(label),
        choices,
        lang,
        send_member_id: (!own).then_some(member.0),
    })
}

pub(super) fn frame(v: &Viewer, pt: &Portal, title: &str, current: &str, main: Markup) -> Markup {
    let l = pt.lang;
    let other = l.other();
    let body = html! {
        header class="top portal" {
            a class="brand" href="/portal" { img src="/assets/icon.svg" alt="" width="24" height="24"; " careline" }
            nav aria-label=(t(l, "main_nav")) {
                ul {
                    li { a href="/portal" aria-current=[(current == "/portal").then_some("page")] { (t(l, "inbox")) } }
                    li { a href="/portal/access" aria-current=[(current == "/portal/access").then_some("page")] { (t(l, "access")) } }
                    li { a href="/portal/sharing" aria-current=[(current == "/portal/sharing").then_some("page")] { (t(l, "sharing")) } }
                }
            }
            div class="who" {
                @if pt.choices.len() > 1 {
                    details class="switcher" {
                        summary {
                            (t(l, "acting_for")) ": "
                            (pt.acting_name.clone().unwrap_or_else(|| t(l, "myself").to_owned()))
                        }
                        ul {
                            @for (m, name) in &pt.choices {
                                li { a href={"/portal/act/" (m.0)} {
                                    @if name.is_empty() { (t(l, "myself")) } @else { (name) }
                                } }
                            }
                        }
                    }
                } @else if let Some(n) = &pt.acting_name {
                    span { (t(l, "acting_for")) ": " (n) }
                }
                a href={"/lang/" (other.code()) "?back=" (current)} lang=(other.code()) { (other.name()) }
                button type="button" class="link" data-logout { (t(l, "sign_out")) }
            }
        }
        (main)
    };
    document(title, l.code(), Some(&v.csrf), body)
}

fn status_label(st: TicketStatus, l: Lang) -> &'static str {
    match st {
        TicketStatus::New | TicketStatus::Open | TicketStatus::PendingInternal => {
            t(l, "status_waiting")
        }
        TicketStatus::PendingMember => t(l, "status_answered"),
        TicketStatus::Solved | TicketStatus::Closed => t(l, "status_done"),
    }
}

fn compose(pt: &Portal, thread: Option<Uuid>) -> Markup {
    let l = pt.lang;
    let heading = if thread.is_some() {
        t(l, "reply")
    } else {
        t(l, "new_message")
    };
    html! {
        section class="compose card" aria-labelledby="compose-h" {
            div class="alarm-box" data-emergency hidden tabindex="-1" role="alert" {
                h2 { (t(l, "emergency_title")) }
                p data-emergency-text {}
                p { a data-emergency-link href="/portal" { (t(l, "see_conversation")) } }
            }
            h2 id="compose-h" { (heading) }
            p class="hint" { (t(l, "emergency_hint")) }
            form data-compose data-member-id=[pt.send_member_id.map(|m| m.to_string())]
                data-thread=[thread.map(|t| t.to_string())]
                data-msg-uploads-unavailable=(t(l, "uploads_unavailable"))
                data-msg-sending=(t(l, "sending")) data-msg-sent=(t(l, "sent")) {
                div class="field" {
                    label for="compose-text" { (t(l, "message")) }
                    textarea id="compose-text" name="text" rows="5" required maxlength="20000" {}
                }
                div class="field" {
                    label for="compose-files" { (t(l, "attach")) }
                    input id="compose-files" name="files" type="file" multiple accept="image/*,application/pdf";
                }
                ul class="uploads" data-uploads aria-live="polite" {}
                div class="notice error" role="alert" data-error hidden {}
                div class="notice" role="status" data-status hidden {}
                button type="submit" class="primary" { (t(l, "send")) }
            }
        }
    }
}

/// Messages of the member's threads, grouped by ticket, newest ticket first.
struct Conversation<'a> {
    ticket: &'a Ticket,
    first: Option<&'a Message>,
    last_at: jiff::Timestamp,
}

pub async fn inbox(State(s): State<AppState>, v: Viewer) -> PageResult {
    let pt = portal(&s, &v).await?;
    let l = pt.lang;
    let now = s.clock.now();
    let filter = TicketFilter {
        queue: None,
        status: None,
        priority: None,
        member: Some(pt.member),
        review_pending: false,
        limit: 200,
    };
    let tickets = if v.p.member_id == Some(pt.member)
        || v.p.proxied(ProxyScope::Messages).any(|m| m == pt.member)
    {
        s.store.tickets(&v.p, filter, now).await?
    } else {
        Vec::new()
    };
    let mut thread_ids: Vec<ThreadId> = tickets.iter().map(|(t, _)| t.thread_id).collect();
    thread_ids.sort_by_key(|t| t.0);
    thread_ids.dedup();
    let mut all: Vec<Message> = Vec::new();
    for id in thread_ids {
        let (_, msgs) = s.store.thread(&v.p, id, now).await?;
        all.extend(msgs);
    }
    let mut convs: Vec<Conversation> = tickets
        .iter()
        .map(|(tk, _)| {
            let mine: Vec<&Message> = all.iter().filter(|m| m.ticket_id == Some(tk.id)).collect();
            Conversation {
                ticket: tk,
                first: mine.iter().find(|m| m.kind == MessageKind::Member).copied(),
                last_at: mine.last().map(|m| m.created_at).unwrap_or(tk.updated_at),
            }
        })
        .collect();
    convs.sort_by_key(|c| std::cmp::Reverse(c.last_at));
    let main = html! {
        main id="main" class="portal-main" {
            h1 { (t(l, "portal")) }
            (compose(&pt, None))
            section aria-labelledby="inbox-h" {
                h2 id="inbox-h" { (t(l, "inbox")) }
                @if convs.is_empty() {
                    p { (t(l, "no_threads")) }
                } @else {
                    ul class="inbox" {
                        @for c in &convs {
                            li class={"conv " (c.ticket.status.as_str())} {
                                a href={"/portal/threads/" (c.ticket.thread_id.0) "#t-" (c.ticket.id.0)} {
                                    span class="snippet" {
                                        (c.first.map(|m| snippet(&m.text)).unwrap_or_else(|| t(l, "conversation").to_owned()))
                                    }
                                }
                                span class="status" { (status_label(c.ticket.status, l)) }
                                span class="muted" { (when(c.last_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(&v, &pt, t(l, "inbox"), "/portal", main).into_response())
}

fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(110).collect();
    if text.chars().count() > 110 {
        s.push('…');
    }
    s
}

async fn thread_body(s: &AppState, v: &Viewer, pt: &Portal, id: Uuid) -> Result<Markup, PageError> {
    let (thread, msgs) = s.store.thread(&v.p, ThreadId(id), s.clock.now()).await?;
    if thread.member_id != pt.member {
        return Err(Error::NotFound("thread").into());
    }
    let files = s.store.thread_attachments(&v.p, thread.id).await?;
    // Each ticket of the thread starts an anchored group, so the inbox can link to it.
    let mut groups: Vec<(Option<Uuid>, Vec<&Message>)> = Vec::new();
    for m in &msgs {
        let tid = m.ticket_id.map(|t| t.0);
        match groups.last_mut() {
            Some((g, list)) if *g == tid => list.push(m),
            _ => groups.push((tid, vec![m])),
        }
    }
    Ok(html! {
        @for (tid, list) in &groups {
            div class="group" id=[tid.map(|t| format!("t-{t}"))] {
                (thread::messages(list, &files, false, pt.lang))
            }
        }
    })
}

pub async fn thread_page(State(s): State<AppState>, v: Viewer, Path(id): Path<Uuid>) -> PageResult {
    let pt = portal(&s, &v).await?;
    let l = pt.lang;
    let body = thread_body(&s, &v, &pt, id).await?;
    let here = format!("/portal/threads/{id}");
    let main = html! {
        main id="main" class="portal-main" {
            p { a href="/portal" { "← " (t(l, "back")) } }
            h1 { (t(l, "conversation")) }
            section aria-label=(t(l, "conversation")) data-fragment={"/portal/threads/" (id) "/fragment"}
                data-on="message.created message.auto_reply ticket.status_changed" {
                (body)
            }
            (compose(&pt, Some(id)))
        }
    };
    Ok(frame(&v, &pt, t(l, "conversation"), &here, main).into_response())
}

pub async fn thread_fragment(
    State(s): State<AppState>,
    v: Viewer,
    Path(id): Path<Uuid>,
) -> PageResult {
    let pt = portal(&s, &v).await?;
    Ok(thread_body(&s, &v, &pt, id).await?.into_response())
}

pub async fn access_log(State(s): State<AppState>, v: Viewer) -> PageResult {
    let pt = portal(&s, &v).await?;
    let l = pt.lang;
    let items = s.store.access_log(&v.p, pt.member, 1000).await?;
    let main = html! {
        main id="main" class="portal-main" {
            h1 { (t(l, "access")) }
            p { (t(l, "access_intro")) }
            @if items.is_empty() {
                p { (t(l, "no_access")) }
            } @else {
                div class="table-wrap" {
                    table class="access" {
                        thead { tr {
                            th scope="col" { (t(l, "when")) }
                            th scope="col" { (t(l, "who")) }
                            th scope="col" { (t(l, "role")) }
                            th scope="col" { (t(l, "what")) }
                            th scope="col" { (t(l, "why")) }
                        } }
                        tbody {
                            @for e in &items {
                                tr {
                                    td { (when(e.at)) }
                                    td { (e.name) }
                                    td { (e.role.replace('_', " ")) }
                                    td { (what_label(&e.what, l)) }
                                    td { (e.why.replace('_', " ")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(&v, &pt, t(l, "access"), "/portal/access", main).into_response())
}

/// Choose whom to act for: remembered in a cookie that holds only the id,
/// checked against the reader's own grants on every page.
pub async fn act_for(v: Viewer, Path(member): Path<Uuid>) -> Response {
    let allowed = v.p.member_id.map(|m| m.0) == Some(member)
        || v.p.proxy_for.iter().any(|(m, _)| m.0 == member);
    let mut resp = Redirect::to("/portal").into_response();
    if allowed
        && let Ok(h) = HeaderValue::from_str(&format!(
            "careline_acting={member}; Path=/; SameSite=Strict; HttpOnly; Max-Age=43200"
        ))
    {
        resp.headers_mut().insert(header::SET_COOKIE, h);
    }
    resp
}

/// What was read, in the reader's words (a search names the member as found).
fn what_label(what: &str, l: Lang) -> String {
    match what {
        "search" => t(l, "what_search").to_owned(),
        other => other.replace('_', " "),
    }
}
