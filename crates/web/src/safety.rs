//! Clinical safety over HTTP: pages and their acknowledgement, the on-call
//! rota, clinical clearance, priority changes and visit booking (with the
//! red-flag interlock), the safety-review queue, the safety report,
//! organization settings and outbound webhooks.

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::Body;
use crate::views::*;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use careline_core::Error;
use careline_core::escalation::{Page, Rota};
use careline_core::ids::*;
use careline_core::model::VisitKind;
use careline_core::settings::OrgSettings;
use careline_store::{Delivery, SafetyReport, SafetyReview, Webhook};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A page as the paged person and the console see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub member_id: Uuid,
    pub team_id: Uuid,
    /// primary, backup, physician, supervisors or org_alarm.
    pub level: String,
    pub targets: Vec<Uuid>,
    pub disposition: String,
    pub reason: String,
    pub flagged_at: String,
    pub created_at: String,
    /// Acknowledge before this, or the next rung is paged. None for the alarm.
    pub deadline: Option<String>,
    /// open, acknowledged, escalated or superseded.
    pub status: String,
    pub acked_by: Option<Uuid>,
    pub acked_at: Option<String>,
}

impl From<&Page> for PageView {
    fn from(p: &Page) -> Self {
        PageView {
            id: p.id.0,
            ticket_id: p.ticket_id.0,
            member_id: p.member_id.0,
            team_id: p.team_id.0,
            level: p.level.as_str().into(),
            targets: p.targets.iter().map(|t| t.0).collect(),
            disposition: p.disposition.as_str().into(),
            reason: p.reason.clone(),
            flagged_at: p.flagged_at.to_string(),
            created_at: p.created_at.to_string(),
            deadline: p.deadline.map(|d| d.to_string()),
            status: p.status.as_str().into(),
            acked_by: p.acked_by.map(|a| a.0),
            acked_at: p.acked_at.map(|a| a.to_string()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageList {
    pub items: Vec<PageView>,
}

/// Open pages the caller must answer.
#[utoipa::path(get, path = "/api/v1/pages", tag = "escalation", security(("bearer" = [])), responses((status = 200, body = PageList)))]
pub async fn my_pages(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<PageList>> {
    Ok(Json(PageList {
        items: s.store.my_pages(&p).await?.iter().map(Into::into).collect(),
    }))
}

/// The paged clinician acknowledges: the chain stops climbing.
#[utoipa::path(post, path = "/api/v1/pages/{id}/ack", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PageView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn ack_page(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PageView>> {
    let now = s.clock.now();
    let page = s.store.ack_page(&p, PageId(id), now).await?;
    let secs = (now.as_microsecond() - page.flagged_at.as_microsecond()).max(0) as f64 / 1e6;
    s.metrics.page_acked(page.disposition, secs);
    Ok(Json((&page).into()))
}

/// Every page sent about a ticket, newest first.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/pages", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses((status = 200, body = PageList)))]
pub async fn ticket_pages(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PageList>> {
    Ok(Json(PageList {
        items: s
            .store
            .ticket_pages(&p, TicketId(id), s.clock.now())
            .await?
            .iter()
            .map(Into::into)
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearanceRequest {
    /// The disposition the clinician judged: emergency, urgent or routine.
    #[schema(schema_with = crate::views::names::disposition)]
    pub disposition: String,
    /// What was decided and why: 1–4,000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub note: String,
}

/// A nurse or physician records the clinical decision on a red flag.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/clearance", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ClearanceRequest, responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn clearance(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<ClearanceRequest>,
) -> ApiResult<Json<TicketView>> {
    let d = parse_disposition(&req.disposition)?;
    let now = s.clock.now();
    let t = s.store.clear(&p, TicketId(id), d, req.note, now).await?;
    let q = s.store.queue(&p, t.queue_id).await?;
    Ok(Json(TicketView::new(&t, &q, now)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// What the clinician read and decided: 1–4,000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub note: String,
}

/// A nurse or physician records their review of a ticket the review net
/// marked (a routine message that reads as clinical).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/review", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ReviewRequest, responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn clear_review(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<ReviewRequest>,
) -> ApiResult<Json<TicketView>> {
    let now = s.clock.now();
    let t = s
        .store
        .clear_review(&p, TicketId(id), req.note, now)
        .await?;
    let q = s.store.queue(&p, t.queue_id).await?;
    Ok(Json(TicketView::new(&t, &q, now)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    #[schema(schema_with = crate::views::names::disposition)]
    pub priority: String,
    /// Why the priority changes (required).
    #[schema(min_length = 1)]
    pub reason: String,
}

/// Raise (any staff on the team) or lower (a clinician, for a red flag) a ticket's priority.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/priority", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = PriorityRequest, responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn priority(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<PriorityRequest>,
) -> ApiResult<Json<TicketView>> {
    let d = parse_disposition(&req.priority)?;
    if req.reason.trim().is_empty() {
        return Err(Error::invalid("a priority change needs a reason").into());
    }
    let now = s.clock.now();
    let t = s
        .store
        .set_priority(&p, TicketId(id), d, req.reason, now)
        .await?;
    let q = s.store.queue(&p, t.queue_id).await?;
    Ok(Json(TicketView::new(&t, &q, now)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitRequest {
    /// routine, same_day, urgent_care or ed.
    #[schema(schema_with = crate::views::names::visit_kind)]
    pub kind: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VisitView {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub kind: String,
    pub at: String,
    pub booked_by: Uuid,
}

/// Book a visit. A routine visit for an uncleared red flag needs a clinician.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/visits", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = VisitRequest, responses((status = 201, body = VisitView), (status = 403, body = Problem), (status = 409, body = Problem, description = "the ticket is closed")))]
pub async fn book_visit(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<VisitRequest>,
) -> ApiResult<(StatusCode, Json<VisitView>)> {
    let kind: VisitKind = req.kind.parse()?;
    let at = crate::extract::time_field("at", Some(&req.at))?
        .ok_or_else(|| Error::invalid("at is required"))?;
    let v = s
        .store
        .book_visit(&p, TicketId(id), kind, at, s.clock.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(VisitView {
            id: v.id.0,
            ticket_id: v.ticket_id.0,
            kind: v.kind.as_str().into(),
            at: v.at.to_string(),
            booked_by: v.booked_by.0,
        }),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotaBody {
    pub primary: Option<Uuid>,
    pub backup: Option<Uuid>,
    pub physician: Option<Uuid>,
    #[serde(default)]
    pub supervisors: Vec<Uuid>,
}

impl From<Rota> for RotaBody {
    fn from(r: Rota) -> Self {
        RotaBody {
            primary: r.primary.map(|u| u.0),
            backup: r.backup.map(|u| u.0),
            physician: r.physician.map(|u| u.0),
            supervisors: r.supervisors.iter().map(|u| u.0).collect(),
        }
    }
}

/// A team's on-call rota.
#[utoipa::path(get, path = "/api/v1/teams/{id}/rota", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)), responses((status = 200, body = RotaBody)))]
pub async fn get_rota(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<RotaBody>> {
    Ok(Json(s.store.rota(&p, TeamId(id)).await?.into()))
}

/// Set a team's on-call rota (administrators and the team's supervisors).
#[utoipa::path(put, path = "/api/v1/teams/{id}/rota", tag = "escalation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = RotaBody, responses((status = 200, body = RotaBody), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_rota(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(b): Body<RotaBody>,
) -> ApiResult<Json<RotaBody>> {
    let r = Rota {
        primary: b.primary.map(UserId),
        backup: b.backup.map(UserId),
        physician: b.physician.map(UserId),
        supervisors: b.supervisors.into_iter().map(UserId).collect(),
        unreadable: None,
    };
    Ok(Json(
        s.store
            .set_rota(&p, TeamId(id), r, s.clock.now())
            .await?
            .into(),
    ))
}

/// The `?status=` filter of the review queues and the delivery list; each
/// operation documents the values it takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    pub status: Option<String>,
}

/// The safety-review queue: failures to clinically escalate found by the audit.
#[utoipa::path(get, path = "/api/v1/safety-reviews", tag = "safety", security(("bearer" = [])),
    params(("status" = Option<crate::views::ReviewStatus>, Query, description = "Only reviews in this state (default: both).")),
    responses((status = 200, body = Object), (status = 403, body = Problem)))]
pub async fn safety_reviews(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<StatusQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let items: Vec<SafetyReview> = s.store.safety_reviews(&p, q.status).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// 1–4,000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub note: String,
}

/// Resolve a safety review with a note.
#[utoipa::path(post, path = "/api/v1/safety-reviews/{id}/resolve", tag = "safety", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ResolveRequest, responses((status = 200, body = Object), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn resolve_review(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<ResolveRequest>,
) -> ApiResult<Json<SafetyReview>> {
    Ok(Json(
        s.store
            .resolve_review(&p, ReviewId(id), req.note, s.clock.now())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// RFC 3339; default 30 days before `until`.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339; default now.
    #[param(format = DateTime)]
    pub until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

fn percentiles(sorted: &[i64]) -> Percentiles {
    let at = |q: f64| -> Option<i64> {
        if sorted.is_empty() {
            return None;
        }
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted.get(i).copied()
    };
    Percentiles {
        count: sorted.len(),
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        p99_ms: at(0.99),
        max_ms: sorted.last().copied(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SafetyReportView {
    pub since: String,
    pub until: String,
    pub contacts: i64,
    pub emergency: i64,
    pub urgent: i64,
    pub pages: i64,
    pub pages_acknowledged: i64,
    pub alarms: i64,
    /// From the red flag's commit to a clinician's acknowledgement.
    pub time_to_acknowledgement: Percentiles,
    /// From the red flag's commit to the first reply by a nurse or physician.
    pub time_to_clinician_reply: Percentiles,
    /// `time_to_acknowledgement` for each red-flag disposition (`emergency`, `urgent`).
    pub time_to_acknowledgement_by_disposition: std::collections::BTreeMap<String, Percentiles>,
    /// `time_to_clinician_reply` for each red-flag disposition.
    pub time_to_clinician_reply_by_disposition: std::collections::BTreeMap<String, Percentiles>,
    pub failures_to_escalate: i64,
    pub open_safety_reviews: i64,
}

/// Safety figures for a period.
#[utoipa::path(get, path = "/api/v1/reports/safety", tag = "safety", security(("bearer" = [])), params(PeriodQuery), responses((status = 200, body = SafetyReportView), (status = 403, body = Problem)))]
pub async fn safety_report(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<PeriodQuery>,
) -> ApiResult<Json<SafetyReportView>> {
    let until =
        crate::extract::time_field("until", q.until.as_deref())?.unwrap_or_else(|| s.clock.now());
    let since = crate::extract::time_field("since", q.since.as_deref())?.unwrap_or_else(|| {
        until
            .checked_sub(jiff::SignedDuration::from_hours(24 * 30))
            .unwrap_or(Timestamp::UNIX_EPOCH)
    });
    let r: SafetyReport = s.store.safety_report(&p, since, until).await?;
    Ok(Json(SafetyReportView {
        since: since.to_string(),
        until: until.to_string(),
        contacts: r.contacts,
        emergency: r.emergency,
        urgent: r.urgent,
        pages: r.pages,
        pages_acknowledged: r.pages_acknowledged,
        alarms: r.alarms,
        time_to_acknowledgement: percentiles(&r.ack_ms),
        time_to_clinician_reply: percentiles(&r.clinician_reply_ms),
        time_to_acknowledgement_by_disposition: r
            .ack_ms_by_disposition
            .iter()
            .map(|(d, v)| (d.clone(), percentiles(v)))
            .collect(),
        time_to_clinician_reply_by_disposition: r
            .reply_ms_by_disposition
            .iter()
            .map(|(d, v)| (d.clone(), percentiles(v)))
            .collect(),
        failures_to_escalate: r.failures_to_escalate,
        open_safety_reviews: r.open_safety_reviews,
    }))
}

/// The organization's settings: SLA targets, acknowledgement deadlines, emergency texts.
#[utoipa::path(get, path = "/api/v1/admin/settings", tag = "admin", security(("bearer" = [])), responses((status = 200, body = Object)))]
pub async fn get_settings(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<OrgSettings>> {
    p.require(
        &[careline_core::model::Role::Admin],
        "admin-only",
        "only administrators see organization settings",
    )?;
    Ok(Json(s.store.settings(p.org_id).await?))
}

/// Replace the organization's settings: the whole document from GET, with
/// changes; a document that leaves a setting out is refused.
#[utoipa::path(put, path = "/api/v1/admin/settings", tag = "admin", security(("bearer" = [])), request_body = Object, responses((status = 200, body = Object), (status = 422, body = Problem)))]
pub async fn put_settings(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(raw): Body<serde_json::Value>,
) -> ApiResult<Json<OrgSettings>> {
    p.require(
        &[careline_core::model::Role::Admin],
        "admin-only",
        "only administrators change organization settings",
    )?;
    // A PUT replaces every setting. A body that leaves one out must not
    // quietly put the default back (the emergency texts, the roles that
    // need a second factor): every setting is named, and nothing else.
    let whole = serde_json::to_value(OrgSettings::default()).map_err(Error::internal)?;
    if let Some(problem) = incomplete(&whole, &raw, "settings") {
        return Err(Error::invalid(format!(
            "{problem}: PUT replaces every setting, so send the whole document from GET /api/v1/admin/settings with your changes"
        ))
        .into());
    }
    let new: OrgSettings = serde_json::from_value(raw)
        .map_err(|e| Error::invalid(format!("invalid settings: {e}")))?;
    if new.ack.emergency_minutes < 1
        || new.ack.urgent_minutes < 1
        || new.ack.emergency_minutes > new.ack.urgent_minutes
    {
        return Err(Error::invalid("acknowledgement deadlines must be at least a minute, and an emergency's no longer than an urgent one's").into());
    }
    s.store.set_settings(&p, new.clone(), s.clock.now()).await?;
    Ok(Json(new))
}

/// The first object key of `whole` missing from `given`, or of `given`
/// unknown to `whole`, at any depth, said as a sentence; `None` when both
/// name the same keys. Arrays and values are left to deserialization.
fn incomplete(whole: &serde_json::Value, given: &serde_json::Value, at: &str) -> Option<String> {
    let (Some(whole), Some(given)) = (whole.as_object(), given.as_object()) else {
        return whole.is_object().then(|| format!("{at} must be an object"));
    };
    if let Some(k) = given.keys().find(|k| !whole.contains_key(*k)) {
        return Some(format!("{at} has no setting '{k}'"));
    }
    whole.iter().find_map(|(k, w)| match given.get(k) {
        None => Some(format!("{at}.{k} is missing")),
        Some(g) => incomplete(w, g, &format!("{at}.{k}")),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// http:// URL of the receiver (a pager or SMS gateway, an EHR), at most 2,000 characters.
    #[schema(pattern = "^http://", max_length = 2000)]
    pub url: String,
    /// Shared secret for the HMAC-SHA256 signature (at least 16 characters).
    #[schema(min_length = 16)]
    pub secret: String,
    /// Event kinds, e.g. ["page.*", "escalation.alarm"]: at least one, each 1–100 characters.
    #[schema(min_items = 1)]
    pub events: Vec<String>,
}

/// Register a webhook. Deliveries carry `X-Careline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
#[utoipa::path(post, path = "/api/v1/admin/webhooks", tag = "admin", security(("bearer" = [])), request_body = WebhookRequest, responses((status = 201, body = Object), (status = 422, body = Problem)))]
pub async fn post_webhook(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<WebhookRequest>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    Webhook::manage_request(&p)?;
    // Checked again, on the addresses of the moment, at every delivery.
    crate::outbound::resolve(&s.config.outbound, &req.url).await?;
    let w = s
        .store
        .create_webhook(&p, req.url, req.secret, req.events, s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(w)))
}

/// Registered webhooks.
#[utoipa::path(get, path = "/api/v1/admin/webhooks", tag = "admin", security(("bearer" = [])), responses((status = 200, body = Object)))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        serde_json::json!({ "items": s.store.webhooks(&p).await? }),
    ))
}

/// Deliveries by status; `dead` is the dead-letter list.
#[utoipa::path(get, path = "/api/v1/admin/webhooks/deliveries", tag = "admin", security(("bearer" = [])),
    params(("status" = Option<crate::views::DeliveryStatus>, Query, description = "Which deliveries (default: `dead`, the dead-letter list).")),
    responses((status = 200, body = Object)))]
pub async fn list_deliveries(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<StatusQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let items: Vec<Delivery> = s
        .store
        .deliveries(&p, q.status.as_deref().unwrap_or("dead"), 200)
        .await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// Send a dead-lettered delivery again.
#[utoipa::path(post, path = "/api/v1/admin/webhooks/deliveries/{id}/replay", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses((status = 200, body = Object), (status = 409, body = Problem)))]
pub async fn replay_delivery(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(
        s.store
            .replay_delivery(&p, DeliveryId(id), s.clock.now())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    /// The member message or call note on this ticket whose judgement was wrong.
    pub message_id: Uuid,
    /// What it should have been: emergency, urgent or routine.
    #[schema(schema_with = crate::views::names::disposition)]
    pub should_be: String,
    /// Why: 1–4,000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub note: String,
}

/// A clinician's mark on a triage judgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkView {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub message_id: Uuid,
    pub member_id: Uuid,
    pub by: Uuid,
    pub by_name: String,
    pub role: String,
    /// What the engine judged.
    pub judged: String,
    /// What the clinician says it should have been.
    pub should_be: String,
    /// `under_triage` or `over_triage`.
    pub direction: String,
    pub note: String,
    pub protocol_version: String,
    pub created_at: String,
    /// The member's words (in listings; absent once redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl From<&careline_core::feedback::JudgementMark> for MarkView {
    fn from(m: &careline_core::feedback::JudgementMark) -> Self {
        MarkView {
            id: m.id.0,
            ticket_id: m.ticket_id.0,
            message_id: m.message_id.0,
            member_id: m.member_id.0,
            by: m.by.0,
            by_name: m.by_name.clone(),
            role: m.role.as_str().into(),
            judged: m.judged.as_str().into(),
            should_be: m.should_be.as_str().into(),
            direction: m.direction.as_str().into(),
            note: m.note.clone(),
            protocol_version: m.protocol_version.clone(),
            created_at: m.created_at.to_string(),
            text: None,
        }
    }
}

/// A nurse or physician marks the triage judgement of a contact on this
/// ticket as wrong (over- or under-triage), with what it should have been.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/judgement-marks", tag = "safety", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = MarkRequest, responses((status = 201, body = MarkView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn mark_judgement(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<MarkRequest>,
) -> ApiResult<(StatusCode, Json<MarkView>)> {
    let should_be = parse_disposition(&req.should_be)?;
    let m = s
        .store
        .mark_judgement(
            &p,
            TicketId(id),
            MessageId(req.message_id),
            should_be,
            req.note,
            s.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json((&m).into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MarksQuery {
    /// `json` (default): a list with the member's words; `jsonl`: one
    /// labelled line per mark in the triage corpus format, for the next
    /// protocol release (redacted messages left out).
    pub format: Option<String>,
    /// At most 10,000; default 1,000.
    pub limit: Option<u32>,
}

/// Clinicians' marks on triage judgements, newest first, for safety
/// reviewers and supervisors; each listing is recorded as a read of the
/// members' words.
#[utoipa::path(get, path = "/api/v1/judgement-marks", tag = "safety", security(("bearer" = [])), params(MarksQuery),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn judgement_marks(
    State(s): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<MarksQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let Query(q) = q.map_err(|e| Error::invalid(e.body_text()))?;
    let jsonl = match q.format.as_deref() {
        None | Some("" | "json") => false,
        Some("jsonl") => true,
        Some(other) => {
            return Err(
                Error::invalid(format!("format must be json or jsonl, not {other:?}")).into(),
            );
        }
    };
    let marks = s
        .store
        .judgement_marks(&p, q.limit.unwrap_or(1000), s.clock.now())
        .await?;
    if jsonl {
        let mut body = String::new();
        for line in marks
            .iter()
            .filter_map(careline_store::MarkedContact::corpus_line)
        {
            body.push_str(&line.to_string());
            body.push('\n');
        }
        return Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "application/x-ndjson; charset=utf-8",
            )],
            body,
        )
            .into_response());
    }
    let items: Vec<MarkView> = marks
        .iter()
        .map(|mc| MarkView {
            text: mc.text.clone(),
            ..MarkView::from(&mc.mark)
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}
