//! Minimum-necessary access over HTTP: the shaped member view, access
//! histories (a member sees who read their data), tagging colleagues into a
//! thread, break-glass with privacy review, and ending sessions.

use crate::AppState;
use crate::auth::{Auth, Session};
use crate::error::{ApiResult, Problem};
use crate::extract::Body;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use careline_core::Error;
use careline_core::authz::Grant;
use careline_core::ids::*;
use careline_core::model::{Member, Role, SensitiveCategory};
use careline_store::{AccessEntry, BreakGlass, Collaborator};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A member as the caller's role may see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberProfile {
    pub id: Uuid,
    pub name: String,
    pub date_of_birth: Option<String>,
    pub sex: Option<String>,
    pub language: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub team_id: Uuid,
    /// Conditions, medications, allergies: clinical roles (and the member) only.
    #[schema(value_type = Option<Object>)]
    pub health_markers: Option<serde_json::Value>,
    /// Sensitive-category items: clinicians on the care team, or where the member consented.
    #[schema(value_type = Option<Vec<Object>>)]
    pub sensitive: Option<serde_json::Value>,
    /// Why the caller may see this member.
    pub access: String,
}

/// Shape a member for a role and a grant: minimum necessary.
pub fn shape(m: &Member, role: Role, grant: Grant) -> MemberProfile {
    let own = matches!(grant, Grant::Own | Grant::Proxy);
    let clinical = role.is_clinical() || own;
    MemberProfile {
        id: m.id.0,
        name: m.name.clone(),
        date_of_birth: m.date_of_birth.map(|d| d.to_string()),
        sex: m.sex.clone(),
        language: m.language.clone(),
        phone: m.phone.clone(),
        email: m.email.clone(),
        plan: m.plan.clone(),
        team_id: m.team_id.0,
        health_markers: clinical.then(|| {
            serde_json::json!({"conditions": m.markers.conditions, "medications": m.markers.medications, "allergies": m.markers.allergies})
        }),
        sensitive: if own {
            serde_json::to_value(&m.markers.sensitive).ok()
        } else if role.is_clinical() {
            serde_json::to_value(m.markers.visible_sensitive(grant)).ok()
        } else {
            None
        },
        access: grant.as_str().into(),
    }
}

/// A member's record, shaped by the caller's role; the read is recorded.
#[utoipa::path(get, path = "/api/v1/members/{id}", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = MemberProfile), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_member(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<MemberProfile>> {
    let (m, grant) = s.store.member(&p, MemberId(id), s.clock.now()).await?;
    Ok(Json(shape(&m, p.role, grant)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessLog {
    pub member_id: Uuid,
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<AccessEntry>,
}

/// Who read my data: role, name, what, when and why.
#[utoipa::path(get, path = "/api/v1/me/access-log", tag = "privacy", security(("bearer" = [])),
    responses((status = 200, body = AccessLog), (status = 403, body = Problem)))]
pub async fn my_access_log(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<AccessLog>> {
    let member = p
        .member_id
        .or_else(|| p.proxied(careline_core::authz::ProxyScope::Record).next())
        .ok_or_else(|| Error::forbidden("members-only", "the access history is for members and their proxies; privacy officers use /api/v1/members/{id}/access-log"))?;
    let items = s.store.access_log(&p, member, 1000).await?;
    Ok(Json(AccessLog {
        member_id: member.0,
        items,
    }))
}

/// Who read a member's data (the member, their proxy, privacy officers).
#[utoipa::path(get, path = "/api/v1/members/{id}/access-log", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = AccessLog), (status = 403, body = Problem)))]
pub async fn member_access_log(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AccessLog>> {
    let items = s.store.access_log(&p, MemberId(id), 5000).await?;
    Ok(Json(AccessLog {
        member_id: id,
        items,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    pub user_id: Uuid,
    /// 1–1,000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
    /// RFC 3339; default 7 days from now, at most 30.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Tag a colleague into a thread (time-limited, revocable, with a reason).
#[utoipa::path(post, path = "/api/v1/threads/{id}/collaborators", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = TagRequest, responses((status = 201, body = Object), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn add_collaborator(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<TagRequest>,
) -> ApiResult<(StatusCode, Json<Collaborator>)> {
    let now = s.clock.now();
    let expires = match crate::extract::time_field("expires_at", req.expires_at.as_deref())? {
        Some(e) => e,
        None => now
            .checked_add(jiff::SignedDuration::from_hours(24 * 7))
            .map_err(Error::internal)?,
    };
    let c = s
        .store
        .add_collaborator(
            &p,
            ThreadId(id),
            UserId(req.user_id),
            req.reason,
            expires,
            now,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Colleagues tagged into a thread (current and past).
#[utoipa::path(get, path = "/api/v1/threads/{id}/collaborators", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)), responses((status = 200, body = Object)))]
pub async fn list_collaborators(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        serde_json::json!({ "items": s.store.collaborators(&p, ThreadId(id)).await? }),
    ))
}

/// Revoke a tag.
#[utoipa::path(delete, path = "/api/v1/threads/{id}/collaborators/{user_id}", tag = "privacy", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove_collaborator(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, user)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    s.store
        .remove_collaborator(&p, ThreadId(id), UserId(user), s.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRequest {
    /// Why: privacy officers review every break-glass access. 10–1,000 characters.
    #[schema(min_length = 10, max_length = 1000)]
    pub reason: String,
}

/// A clinician breaks the glass for a member outside their care team: time-limited, alerts privacy officers.
#[utoipa::path(post, path = "/api/v1/members/{id}/break-glass", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = BreakGlassRequest, responses((status = 201, body = Object), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn break_glass(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<BreakGlassRequest>,
) -> ApiResult<(StatusCode, Json<BreakGlass>)> {
    let now = s.clock.now();
    let until = now
        .checked_add(s.config.break_glass)
        .map_err(Error::internal)?;
    let b = s
        .store
        .break_glass(&p, MemberId(id), req.reason, until, now)
        .await?;
    Ok((StatusCode::CREATED, Json(b)))
}

/// The privacy officers' break-glass review queue (`?status=open` for unreviewed only).
#[utoipa::path(get, path = "/api/v1/privacy/break-glass", tag = "privacy", security(("bearer" = [])), params(("status" = Option<String>, Query, description = "`open` for the accesses not yet reviewed; anything else, or none, for all.")), responses((status = 200, body = Object), (status = 403, body = Problem)))]
pub async fn break_glass_queue(
    State(s): State<AppState>,
    Auth(p): Auth,
    axum::extract::Query(q): axum::extract::Query<crate::safety::StatusQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let open = q.status.as_deref() == Some("open");
    Ok(Json(
        serde_json::json!({ "items": s.store.break_glass_reviews(&p, open).await? }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// 1–4,000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub note: String,
}

/// A privacy officer records the review of a break-glass access.
#[utoipa::path(post, path = "/api/v1/privacy/break-glass/{id}/review", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ReviewRequest, responses((status = 200, body = Object), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn review_break_glass(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<ReviewRequest>,
) -> ApiResult<Json<BreakGlass>> {
    Ok(Json(
        s.store
            .review_break_glass(&p, id, req.note, s.clock.now())
            .await?,
    ))
}

/// Log out: end this session now.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "sessions", security(("bearer" = [])), responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(
    State(s): State<AppState>,
    Session(_, token_hash): Session,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 1])> {
    s.store.revoke_session(&token_hash, s.clock.now()).await?;
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        crate::auth::SESSION_COOKIE
    );
    Ok((
        StatusCode::NO_CONTENT,
        [(axum::http::header::SET_COOKIE, clear)],
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub sessions: u64,
}

/// An administrator ends every session of a user (a lost phone, a departure).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/revoke-sessions", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Revoked), (status = 403, body = Problem)))]
pub async fn revoke_sessions(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Revoked>> {
    Ok(Json(Revoked {
        sessions: s
            .store
            .revoke_user_sessions(&p, UserId(id), s.clock.now())
            .await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyRequest {
    /// The caregiver's username (a proxy account of this organization).
    pub username: String,
    /// `messages`, `record` or `full` (the default).
    #[schema(schema_with = crate::views::names::proxy_scope)]
    pub scope: Option<String>,
    /// RFC 3339; omitted means until revoked.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<careline_store::ProxyEntry>,
}

/// Who may act for a member, and with what scope (the member, administrators, privacy officers).
#[utoipa::path(get, path = "/api/v1/members/{id}/proxies", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ProxyList), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn member_proxies(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProxyList>> {
    let items = s
        .store
        .member_proxies(&p, MemberId(id), s.clock.now())
        .await?;
    Ok(Json(ProxyList { items }))
}

/// The member (or an administrator) lets a caregiver act for them within a scope.
#[utoipa::path(post, path = "/api/v1/members/{id}/proxies", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ProxyRequest, responses((status = 201, body = Object), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn grant_proxy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<ProxyRequest>,
) -> ApiResult<(StatusCode, Json<careline_store::ProxyEntry>)> {
    let scope = crate::admin::parse_scope(req.scope.as_deref())?;
    let expires_at = crate::extract::time_field("expires_at", req.expires_at.as_deref())?;
    let entry = s
        .store
        .grant_proxy_as_member(
            &p,
            MemberId(id),
            &req.username,
            scope,
            expires_at,
            s.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// End a caregiver's access: the member, the caregiver themself, an administrator or a privacy officer.
#[utoipa::path(delete, path = "/api/v1/members/{id}/proxies/{user_id}", tag = "privacy", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_proxy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, user)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    s.store
        .revoke_proxy(&p, MemberId(id), UserId(user), s.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// For a member: who acts for them. For a caregiver: whom they act for.
#[utoipa::path(get, path = "/api/v1/me/proxies", tag = "privacy", security(("bearer" = [])),
    responses((status = 200, body = ProxyList), (status = 403, body = Problem)))]
pub async fn my_proxies(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<ProxyList>> {
    let items = s.store.my_proxy_grants(&p, s.clock.now()).await?;
    Ok(Json(ProxyList { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Consents {
    pub member_id: Uuid,
    /// Sensitive categories the member agreed to share with every clinician who has access.
    #[schema(value_type = Vec<String>)]
    pub consented: Vec<SensitiveCategory>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// `behavioral_health`, `substance_use`, `sexual_reproductive_health` or `hiv`.
    #[schema(schema_with = crate::views::names::sensitive_category)]
    pub category: SensitiveCategory,
    /// true records consent, false withdraws it.
    pub granted: bool,
    /// Required when a privacy officer records it on the member's behalf.
    pub reason: Option<String>,
}

/// The member's consents to share sensitive categories.
#[utoipa::path(get, path = "/api/v1/members/{id}/consents", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Consents), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn consents(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Consents>> {
    let consented = s.store.consents(&p, MemberId(id)).await?;
    Ok(Json(Consents {
        member_id: id,
        consented,
    }))
}

/// Record or withdraw consent to share a sensitive category (the member, a
/// proxy with the record scope, or a privacy officer with a reason).
#[utoipa::path(post, path = "/api/v1/members/{id}/consents", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ConsentRequest, responses((status = 200, body = Consents), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_consent(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<ConsentRequest>,
) -> ApiResult<Json<Consents>> {
    let consented = s
        .store
        .set_consent(
            &p,
            MemberId(id),
            careline_store::ConsentChange {
                category: req.category,
                granted: req.granted,
                reason: req.reason,
            },
            s.clock.now(),
        )
        .await?;
    Ok(Json(Consents {
        member_id: id,
        consented,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactRequest {
    /// Why the content must no longer be shown (recorded): 1–1,000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

/// A privacy officer redacts a message: every view shows a notice instead
/// of its text, triage and files; the stored text, its hash in the record
/// and the message itself stay, and the redaction is an event.
#[utoipa::path(post, path = "/api/v1/messages/{id}/redact", tag = "privacy", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = RedactRequest, responses((status = 200, body = crate::views::MessageView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn redact(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<RedactRequest>,
) -> ApiResult<Json<crate::views::MessageView>> {
    let m = s
        .store
        .redact_message(&p, MessageId(id), &req.reason, s.clock.now())
        .await?;
    Ok(Json(crate::views::MessageView::new(&m, true)))
}
