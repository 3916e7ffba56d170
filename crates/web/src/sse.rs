//! `GET /api/v1/events`: committed events the caller may see, as
//! Server-Sent Events. Staff get events of their teams' queues; members and
//! proxies get their own thread's events, without staff-only messages.
//! Events carry identifiers and states, never message text.

use crate::AppState;
use crate::auth::Auth;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use careline_core::authz::Principal;
use careline_core::event::Event;
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Whether `p` may see `e` on their stream.
pub fn visible(p: &Principal, e: &Event) -> bool {
    if e.org_id != p.org_id {
        return false;
    }
    if p.role.is_staff() {
        if e.kind.starts_with("privacy.") {
            return p.role == careline_core::model::Role::PrivacyOfficer;
        }
        if e.kind.starts_with("thread.collaborator") && e.payload.contains(&p.user_id.to_string()) {
            return true;
        }
        if e.kind == "phi.read" {
            return false;
        }
        // A file refused by the virus scanner alerts security staff.
        if e.kind == "attachment.infected"
            && matches!(
                p.role,
                careline_core::model::Role::PrivacyOfficer | careline_core::model::Role::Admin
            )
        {
            return true;
        }
        if e.kind == "escalation.alarm" {
            return p.role.is_clinical() || p.role == careline_core::model::Role::Supervisor;
        }
        if e.kind.starts_with("page.") && e.payload.contains(&p.user_id.to_string()) {
            // Paged people hear their pages even outside their teams.
            return true;
        }
        return e.team_id.is_some_and(|t| p.sees_team(t));
    }
    if e.kind.starts_with("page.")
        || e.kind.starts_with("escalation.")
        || e.kind.starts_with("ticket.override")
    {
        return false;
    }
    let mine = e.member_id.is_some_and(|m| {
        p.member_id == Some(m)
            || p.proxied(careline_core::authz::ProxyScope::Messages)
                .any(|x| x == m)
    });
    if !mine || e.ticket_id.is_none() {
        return false;
    }
    // Staff-only messages and their triage stay staff-only.
    if e.kind == "triage.judged" {
        return false;
    }
    !(e.kind == "message.created"
        && (e.payload.contains("\"internal_note\"") || e.payload.contains("\"call_note\"")))
}

fn to_sse(e: &Event) -> SseEvent {
    SseEvent::default()
        .event(e.kind.clone())
        .id(e.seq.to_string())
        .data(e.public_json().to_string())
}

struct Guard(Arc<crate::metrics::Metrics>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The caller's live event stream.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of committed events the caller may see", content_type = "text/event-stream")))]
pub async fn events(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.store.bus().subscribe();
    s.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = Guard(s.metrics.clone());
    let shutdown = s.shutdown.clone();
    let keep_alive = s.config.sse_keep_alive.max(Duration::from_millis(100));
    let hello = SseEvent::default()
        .event("ready")
        .data(serde_json::json!({"user_id": p.user_id}).to_string());
    let first = stream::once(async move { Ok::<_, Infallible>(hello) });
    let rest = stream::unfold(
        (rx, p, guard, shutdown),
        |(mut rx, p, guard, mut shutdown)| async move {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = shutdown.changed() => return None,
                };
                match next {
                    Ok(e) if visible(&p, &e) => {
                        return Some((Ok(to_sse(&e)), (rx, p, guard, shutdown)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        let ev = SseEvent::default()
                            .event("lagged")
                            .data(serde_json::json!({"missed": n}).to_string());
                        return Some((Ok(ev), (rx, p, guard, shutdown)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(futures_util::StreamExt::chain(first, rest))
        .keep_alive(KeepAlive::new().interval(keep_alive))
}
