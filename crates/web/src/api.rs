//! The REST handlers. Each one parses, calls the store (which authorizes
//! through the domain), and shapes the answer; none holds business rules.

use crate::AppState;
use crate::auth::{self, Auth};
use crate::error::{ApiResult, Problem};
use crate::extract::Body;
use crate::views::*;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use careline_core::Error;
use careline_core::ids::*;
use careline_core::ingest::{ContactIn, ContactKind};
use careline_core::model::TicketStatus;
use careline_core::validate::MessageText;
use careline_store::{ContactRequest, TicketFilter};
use careline_triage::{Channel, Context};
use std::time::Instant;
use uuid::Uuid;

/// Log in with a username and password.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = LoginRequest,
    responses((status = 201, body = SessionCreated), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "the account has a second factor and none was sent"),
        (status = 422, body = Problem), (status = 429, body = Problem, description = "too many attempts from this address, or too many failures for this username from this address: wait as Retry-After says")))]
pub async fn create_session(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<(StatusCode, axum::http::HeaderMap, Json<SessionCreated>)> {
    let now = s.clock.now();
    let ip = peer.ip();
    let username = req.username.trim().to_owned();
    let key = careline_core::login::account_key(&username);
    // The throttle knows usernames as typed, not accounts: a name that is no
    // account is refused exactly as a real one, and nothing here waits on
    // the record (outcomes are written after the answer).
    if let Err(refused) = s.login_throttle.admit(&key, ip, now) {
        s.metrics.login_failures.inc();
        if refused.record {
            s.login_notes.send(auth::LoginNote::Throttled {
                username,
                address: ip,
                at: now,
            });
        }
        return Err(refused.error.into());
    }
    let failed = |s: &AppState| {
        let f = s.login_throttle.failed(&key, ip, now);
        s.metrics.login_failures.inc();
        s.login_notes.send(auth::LoginNote::Failed {
            username: username.clone(),
            address: ip,
            at: now,
            alert: f.alert.then_some(f.account_failures),
        });
    };
    let creds = s.store.credentials(&username).await?;
    let (hash, user) = match &creds {
        Some(c) if !c.user.disabled => (Some(c.password_hash.clone()), Some(c.user.clone())),
        _ => (None, None),
    };
    let password = req.password.clone();
    // Argon2 runs on the blocking pool, against the account's hash or the
    // decoy at the same cost.
    let ok = tokio::task::spawn_blocking(move || {
        let decoy = auth::decoy_hash();
        auth::verify_password(&password, hash.as_deref().unwrap_or(decoy))
    })
    .await
    .map_err(Error::internal)?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            failed(&s);
            return Err(Error::Unauthenticated("unknown username or wrong password".into()).into());
        }
    };
    if let Err(e) = crate::mfa::check_login(
        &s,
        user.id,
        req.totp.as_deref(),
        req.recovery_code.as_deref(),
        now,
    )
    .await
    {
        if matches!(e, Error::Unauthenticated(_)) {
            failed(&s);
        }
        return Err(e.into());
    }
    s.login_throttle.succeeded(&key, ip);
    let enrolled = s.store.mfa_state(user.id).await?.enabled;
    let mfa_pending = !enrolled
        && s.store
            .settings(user.org_id)
            .await?
            .mfa_required_roles
            .contains(&user.role);
    let (token, token_hash) = auth::new_token()?;
    let expires_at = now
        .checked_add(s.config.session_ttl)
        .map_err(Error::internal)?;
    s.store
        .create_session(
            careline_store::NewSession {
                mfa_pending,
                token_hash,
                user_id: user.id,
                org_id: user.org_id,
                expires_at,
            },
            now,
        )
        .await?;
    let csrf = req.cookie.then(|| auth::csrf_token(&token));
    let mut headers = axum::http::HeaderMap::new();
    if req.cookie {
        let max_age = s.config.session_ttl.as_secs();
        let cookie = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            auth::SESSION_COOKIE,
            if s.config.tls { "; Secure" } else { "" }
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
            headers.insert(axum::http::header::SET_COOKIE, v);
        }
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(SessionCreated {
            token,
            mfa_enrolment_required: mfa_pending,
            csrf_token: csrf,
            expires_at: expires_at.to_string(),
            user: UserSummary {
                id: user.id.0,
                role: user.role.as_str().into(),
                name: user.name,
            },
        }),
    ))
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(Auth(p): Auth) -> Json<Me> {
    Json((&p).into())
}

fn judge(
    s: &AppState,
    text: &MessageText,
    channel: Channel,
    language: Option<&str>,
) -> careline_triage::Judgement {
    let started = Instant::now();
    let j = s.engine.judge(
        text.as_str(),
        &Context {
            channel,
            language: language.map(String::from),
        },
    );
    s.metrics
        .triage_seconds
        .observe(started.elapsed().as_secs_f64());
    j
}

/// Triage a contact and record it (message, ticket, routing, clocks, page,
/// events) in one transaction; the one path for portal messages and call notes.
async fn record(
    s: &AppState,
    p: &careline_core::authz::Principal,
    member_id: MemberId,
    kind: ContactKind,
    text: MessageText,
    attachments: Vec<careline_core::ids::AttachmentId>,
) -> Result<(careline_store::ContactOutcome, jiff::Timestamp), Error> {
    let started = Instant::now();
    let channel = if kind == ContactKind::CallNote {
        Channel::CallNote
    } else {
        Channel::Portal
    };
    let judgement = judge(s, &text, channel, None);
    let contact = ContactIn {
        kind,
        author_id: p.user_id,
        author_name: p.name.clone(),
        text,
        judgement,
    };
    let now = s.clock.now();
    let out = s
        .store
        .record_contact(
            ContactRequest {
                principal: p.clone(),
                member_id,
                contact,
                attachments,
            },
            now,
        )
        .await?;
    let secs = started.elapsed().as_secs_f64();
    s.metrics.contact(out.ticket.priority, secs);
    if out.page.is_some() {
        s.metrics.paged(secs);
    }
    Ok((out, now))
}

/// A member (or their proxy) sends a message. It is triaged, stored with its
/// ticket and events in one transaction, and acknowledged only after commit.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", security(("bearer" = [])), request_body = NewMessage,
    responses((status = 201, body = ContactCreated), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "no such member"), (status = 422, body = Problem),
        (status = 503, body = Problem, description = "too many messages of this organization are waiting to be written; send again")))]
pub async fn create_message(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<NewMessage>,
) -> ApiResult<(StatusCode, Json<ContactCreated>)> {
    let member_id = p.message_subject(req.member_id.map(MemberId))?;
    let text = MessageText::parse(&req.text)?;
    let files = crate::attachments::check_count(&s, &req.attachment_ids)?;
    let with_files = !files.is_empty();
    let (out, now) = record(&s, &p, member_id, ContactKind::Message, text, files).await?;
    let attached = if with_files {
        s.store
            .thread_attachments(&p, out.message.thread_id)
            .await?
    } else {
        Vec::new()
    };
    Ok((
        StatusCode::CREATED,
        Json(ContactCreated {
            message: MessageView::new(&out.message, false).with_attachments(&attached, false),
            ticket: TicketView::new(&out.ticket, &out.queue, now),
            auto_reply: out.auto_reply.as_ref().map(|m| MessageView::new(m, false)),
            page: out.page.as_ref().map(Into::into),
        }),
    ))
}

/// An agent records a phone call's notes; triaged like a message.
#[utoipa::path(post, path = "/api/v1/calls", tag = "calls", security(("bearer" = [])), request_body = NewCall,
    responses((status = 201, body = CallCreated), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_call(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<NewCall>,
) -> ApiResult<(StatusCode, Json<CallCreated>)> {
    let text = MessageText::parse(&req.notes)?;
    let (out, now) = record(
        &s,
        &p,
        MemberId(req.member_id),
        ContactKind::CallNote,
        text,
        Vec::new(),
    )
    .await?;
    let triage = out
        .message
        .triage
        .as_ref()
        .map(TriageView::from)
        .ok_or_else(|| Error::internal("call stored without triage"))?;
    Ok((
        StatusCode::CREATED,
        Json(CallCreated {
            call: CallView {
                id: out.call_id.map(|c| c.0).unwrap_or_default(),
                member_id: req.member_id,
                agent_id: out.message.author_id.map(|a| a.0),
                message_id: out.message.id.0,
                notes: out.message.text.clone(),
                created_at: out.message.created_at.to_string(),
                triage,
            },
            ticket: TicketView::new(&out.ticket, &out.queue, now),
            agent_guidance: out.agent_guidance.clone(),
            page: out.page.as_ref().map(Into::into),
        }),
    ))
}

/// A thread's messages in order. Members never see internal notes or call notes.
#[utoipa::path(get, path = "/api/v1/threads/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ThreadView), (status = 404, body = Problem)))]
pub async fn get_thread(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ThreadView>> {
    let (thread, messages) = s.store.thread(&p, ThreadId(id), s.clock.now()).await?;
    let staff = p.role.is_staff();
    let files = s.store.thread_attachments(&p, thread.id).await?;
    Ok(Json(ThreadView {
        id: thread.id.0,
        member_id: thread.member_id.0,
        messages: messages
            .iter()
            .map(|m| MessageView::new(m, staff).with_attachments(&files, staff))
            .collect(),
    }))
}

/// The queues the caller works, with counts.
#[utoipa::path(get, path = "/api/v1/queues", tag = "tickets", security(("bearer" = [])), responses((status = 200, body = QueueList)))]
pub async fn list_queues(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<QueueList>> {
    let items = s
        .store
        .queues(&p)
        .await?
        .into_iter()
        .map(|q| QueueView {
            id: q.queue.id.0,
            name: q.queue.name,
            kind: q.queue.kind.as_str().into(),
            team_id: q.queue.team_id.0,
            team_name: q.team_name,
            open: q.open,
            unassigned: q.unassigned,
            emergency: q.emergency,
            urgent: q.urgent,
        })
        .collect();
    Ok(Json(QueueList { items }))
}

/// Tickets the caller may see, most urgent first, then by the next SLA deadline.
#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets", security(("bearer" = [])), params(TicketQuery),
    responses((status = 200, body = TicketList), (status = 422, body = Problem)))]
pub async fn list_tickets(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<TicketQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<TicketList>> {
    let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
    let filter = TicketFilter {
        queue: q.queue.map(QueueId),
        status: q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse::<TicketStatus>)
            .transpose()?,
        priority: q
            .priority
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_disposition)
            .transpose()?,
        member: q.member.map(MemberId),
        review_pending: match q.review.as_deref() {
            None | Some("") => false,
            Some("pending") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "review must be pending (or absent), not {other:?}"
                ))
                .into());
            }
        },
        limit: q.limit.unwrap_or(200),
    };
    let now = s.clock.now();
    let items = s
        .store
        .tickets(&p, filter, now)
        .await?
        .iter()
        .map(|(t, q)| TicketView::new(t, q, now))
        .collect();
    Ok(Json(TicketList { items }))
}

/// One ticket.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = TicketView), (status = 404, body = Problem)))]
pub async fn get_ticket(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TicketView>> {
    let now = s.clock.now();
    let (t, q) = s.store.ticket(&p, TicketId(id), now).await?;
    Ok(Json(TicketView::new(&t, &q, now)))
}

/// A staff reply (the member sees it, and the ticket waits for them) or an internal note.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/replies", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewReply,
    responses((status = 201, body = ReplyCreated), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn reply(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<NewReply>,
) -> ApiResult<(StatusCode, Json<ReplyCreated>)> {
    let text = MessageText::parse(&req.text)?;
    let files = crate::attachments::check_count(&s, &req.attachment_ids)?;
    let with_files = !files.is_empty();
    let now = s.clock.now();
    let (m, t) = s
        .store
        .reply(&p, TicketId(id), text, req.internal, files, now)
        .await?;
    let attached = if with_files {
        s.store.thread_attachments(&p, m.thread_id).await?
    } else {
        Vec::new()
    };
    let q = s.store.queue(&p, t.queue_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(ReplyCreated {
            message: MessageView::new(&m, true).with_attachments(&attached, true),
            ticket: TicketView::new(&t, &q, now),
        }),
    ))
}

/// Claim, assign or unassign.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/assign", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AssignRequest,
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn assign(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<AssignRequest>,
) -> ApiResult<Json<TicketView>> {
    let now = s.clock.now();
    let t = s
        .store
        .assign(&p, TicketId(id), req.staff_id.map(UserId), now)
        .await?;
    let q = s.store.queue(&p, t.queue_id).await?;
    Ok(Json(TicketView::new(&t, &q, now)))
}

/// Move a ticket to another state. Illegal moves are 409; a non-clinician
/// solving or closing a red-flag ticket is 403.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/transitions", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TransitionRequest,
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn transition(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<TransitionRequest>,
) -> ApiResult<Json<TicketView>> {
    let to: TicketStatus = req.to.parse()?;
    let reason = req.reason.filter(|r| !r.trim().is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 2000) {
        return Err(Error::invalid("reason must be at most 2000 characters").into());
    }
    let now = s.clock.now();
    let t = s
        .store
        .transition(&p, TicketId(id), to, reason, now)
        .await?;
    let q = s.store.queue(&p, t.queue_id).await?;
    Ok(Json(TicketView::new(&t, &q, now)))
}
