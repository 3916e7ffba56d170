//! `GET /api/v1/events`: committed events the caller may see, as
//! Server-Sent Events. Staff get events of their teams' queues and of the
//! members they hold a grant for; members and proxies get their own
//! thread's events, without staff-only messages. Events carry identifiers
//! and states, never message text.
//!
//! A stream lives for hours, so the caller is not trusted as they were at
//! connect: before any event is delivered the stream loads the caller again
//! from their session when an event that may change their access has passed
//! (logout, revocation, team or tag changes, break-glass, proxy grants,
//! pages) or when the session or one of their grants has run out by the
//! app's clock. A session that has ended closes the stream with a last
//! `session-ended` event naming why.

use crate::AppState;
use crate::auth::Session;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use careline_core::authz::Principal;
use careline_core::event::Event;
use careline_core::stream::{SessionEnd, Standing, may_change_access};
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
        // A tag, page or break-glass opens that member's events too.
        let granted = e
            .member_id
            .is_some_and(|m| p.grants.iter().any(|(g, _)| *g == m));
        return granted || e.team_id.is_some_and(|t| p.sees_team(t));
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

/// How often, in real time, an idle stream looks at the app's clock to see
/// whether its caller's session or a grant has run out.
const EXPIRY_CHECK: Duration = Duration::from_secs(1);

/// One open stream: whom it serves and what it knows about them.
struct Live {
    state: AppState,
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    /// The hash of the session token the stream was opened with.
    token_hash: String,
    /// The caller as last loaded.
    principal: Principal,
    /// Until when, by the app's clock, `principal` holds without a reload.
    until: jiff::Timestamp,
    tick: tokio::time::Interval,
    _guard: Guard,
}

/// What the stream says next.
enum Next {
    Send(SseEvent),
    End(SessionEnd),
    Close,
}

impl Live {
    /// Load the caller again; `Err` with the reason when the session ended.
    /// A store that cannot answer ends the stream too: nothing is delivered
    /// on grants that could not be checked.
    async fn reload(&mut self) -> Result<(), SessionEnd> {
        let now = self.state.clock.now();
        let idle = self.state.config.idle_timeout;
        match self
            .state
            .store
            .session_standing(&self.token_hash, now, idle)
            .await
        {
            Ok(Standing::Live { principal, until }) => {
                self.principal = principal;
                self.until = until;
                Ok(())
            }
            Ok(Standing::Ended(why)) => Err(why),
            Err(e) => {
                tracing::warn!(error = %e, "an event stream could not check its caller and ends");
                Err(SessionEnd::Revoked)
            }
        }
    }

    fn ran_out(&self) -> bool {
        self.state.clock.now() >= self.until
    }

    async fn next(&mut self) -> Next {
        let mut shutdown = self.state.shutdown.clone();
        loop {
            let received = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.tick.tick() => {
                    if self.ran_out() && let Err(why) = self.reload().await {
                        return Next::End(why);
                    }
                    continue;
                }
                _ = shutdown.changed() => return Next::Close,
            };
            match received {
                Ok(e) => {
                    if (self.ran_out() || may_change_access(&self.principal, &e))
                        && let Err(why) = self.reload().await
                    {
                        return Next::End(why);
                    }
                    if visible(&self.principal, &e) {
                        return Next::Send(to_sse(&e));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    // Missed events may have changed access: check before going on.
                    if let Err(why) = self.reload().await {
                        return Next::End(why);
                    }
                    return Next::Send(
                        SseEvent::default()
                            .event("lagged")
                            .data(serde_json::json!({"missed": n}).to_string()),
                    );
                }
                Err(RecvError::Closed) => return Next::Close,
            }
        }
    }
}

/// The caller's live event stream.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of committed events the caller may see; ends with a `session-ended` event (`reason`: revoked, expired, idle or disabled) when the caller's session does", content_type = "text/event-stream")))]
pub async fn events(
    State(s): State<AppState>,
    Session(p, token_hash): Session,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.store.bus().subscribe();
    s.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = Guard(s.metrics.clone());
    let keep_alive = s.config.sse_keep_alive.max(Duration::from_millis(100));
    let hello = SseEvent::default()
        .event("ready")
        .data(serde_json::json!({"user_id": p.user_id}).to_string());
    let first = stream::once(async move { Ok::<_, Infallible>(hello) });
    let mut tick = tokio::time::interval(EXPIRY_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live {
        // Until the first reload: the connect-time check has just passed.
        until: s.clock.now(),
        state: s,
        rx,
        token_hash,
        principal: p,
        tick,
        _guard: guard,
    };
    let rest = stream::unfold(Some(live), |live| async move {
        let mut live = live?;
        match live.next().await {
            Next::Send(ev) => Some((Ok(ev), Some(live))),
            Next::End(why) => {
                let ev = SseEvent::default()
                    .event("session-ended")
                    .data(serde_json::json!({"reason": why.as_str()}).to_string());
                Some((Ok(ev), None))
            }
            Next::Close => None,
        }
    });
    Sse::new(futures_util::StreamExt::chain(first, rest))
        .keep_alive(KeepAlive::new().interval(keep_alive))
}
