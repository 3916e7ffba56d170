//! careline's HTTP interface: the REST API under `/api/v1` (OpenAPI at
//! `/api/v1/openapi.json`), the Server-Sent Events stream, health, readiness
//! and Prometheus metrics. Handlers are thin: parse, call the store (which
//! authorizes through the domain), shape the answer. Errors are problem+json.

pub mod admin;
pub mod api;
pub mod attachments;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod mfa;
pub mod outbound;
pub mod privacy;
pub mod safety;
pub mod sse;
pub mod views;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use careline_core::clock::Clock;
use careline_store::Store;
use careline_triage::Engine;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use utoipa::OpenApi;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// How long a login session lasts.
    pub session_ttl: jiff::SignedDuration,
    /// A session unused for this long ends.
    pub idle_timeout: jiff::SignedDuration,
    /// Break-glass access lasts this long.
    pub break_glass: jiff::SignedDuration,
    /// Served over TLS: send HSTS, mark cookies Secure.
    pub tls: bool,
    /// How often an idle event stream sends a keep-alive comment; below the
    /// server's keep-alive timeout so a quiet stream is never cut as idle.
    pub sse_keep_alive: std::time::Duration,
    /// Where webhooks (and any other outbound request) may go.
    pub outbound: careline_core::outbound::OutboundPolicy,
    /// How long a client may take over each part of a request.
    pub timeouts: limits::Timeouts,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_ttl: jiff::SignedDuration::from_hours(12),
            idle_timeout: jiff::SignedDuration::from_mins(30),
            break_glass: jiff::SignedDuration::from_hours(1),
            tls: false,
            sse_keep_alive: std::time::Duration::from_secs(15),
            outbound: careline_core::outbound::OutboundPolicy::default(),
            timeouts: limits::Timeouts::default(),
        }
    }
}

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<metrics::Metrics>,
    pub config: Arc<WebConfig>,
    /// Flips to `true` when the server is shutting down; long-lived streams end.
    pub shutdown: watch::Receiver<bool>,
    /// Recently authenticated callers.
    pub principals: Arc<auth::PrincipalCache>,
    /// Failed and refused logins by username and source (see `careline_core::login`).
    pub login_throttle: Arc<careline_core::login::LoginThrottle>,
    /// Login outcomes on their way to the record, written after the answer.
    pub login_notes: Arc<auth::LoginNotes>,
    /// Where uploads are stored and the limits on them.
    pub attachments: Arc<attachments::AttachmentConfig>,
    /// The background workers' health, for `/readyz` and `/metrics`.
    pub workers: Arc<health::Workers>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "careline API", description = "Every member conversation becomes a triaged, routed, audited ticket. Errors are RFC 9457 problem+json."),
    paths(
        api::create_session, api::me, api::create_message, api::create_call, api::get_thread, api::list_queues,
        api::list_tickets, api::get_ticket, api::reply, api::assign, api::transition, sse::events,
        admin::list_teams, admin::post_team, admin::list_users, admin::post_staff, admin::list_members,
        admin::post_member, admin::post_proxy, admin::remove_team_member,
        safety::my_pages, safety::ack_page, safety::ticket_pages, safety::clearance, safety::clear_review, safety::mark_judgement, safety::judgement_marks, safety::priority, safety::book_visit,
        safety::get_rota, safety::put_rota, safety::safety_reviews, safety::resolve_review, safety::safety_report,
        safety::get_settings, safety::put_settings, safety::post_webhook, safety::list_webhooks, safety::list_deliveries,
        safety::replay_delivery,
        privacy::get_member, privacy::my_access_log, privacy::member_access_log, privacy::add_collaborator,
        privacy::list_collaborators, privacy::remove_collaborator, privacy::break_glass, privacy::break_glass_queue,
        privacy::review_break_glass, privacy::member_proxies, privacy::grant_proxy, privacy::revoke_proxy,
        privacy::my_proxies, console::intake::live_triage, console::intake::search_members, privacy::consents, privacy::set_consent, privacy::logout, privacy::redact,
        attachments::upload, attachments::get_attachment, attachments::content, attachments::export, privacy::revoke_sessions, mfa::start, mfa::finish,
    ),
    components(schemas(views::ReviewStatus, views::DeliveryStatus)),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "sessions"), (name = "messages"), (name = "calls"), (name = "tickets"), (name = "events"), (name = "escalation"), (name = "safety"), (name = "privacy"), (name = "attachments"), (name = "admin"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("token from POST /api/v1/sessions"))
                    .build(),
            ),
        );
    }
}

/// Declares the problem responses every operation can give by construction,
/// so the document cannot forget them: 401 and 403 wherever a session is
/// required (no or an expired token; a role or access refused, a second
/// factor still to enrol, a cookie session without its CSRF token), 400 and
/// 404 wherever an id is in the path, 422 wherever a query string or body is
/// read, and 400, 413 and 415 for a JSON body that is malformed, too large or
/// not JSON. Each handler's annotation adds what only it can answer. Every
/// problem is declared as `application/problem+json`, the type it is sent as.
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                declare_problems(op);
            }
        }
    }
}

fn declare_problems(op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::path::ParameterIn;
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_param = |place: ParameterIn| {
        params
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let (in_path, in_query) = (has_param(ParameterIn::Path), has_param(ParameterIn::Query));
    let json_body =
        matches!(&op.request_body, Some(RefOr::T(b)) if b.content.contains_key("application/json"));
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if secured {
        wanted.push(("401", "no session token, or an unknown or expired one"));
        wanted.push((
            "403",
            "the caller's role or access does not allow this (or a second factor must be enrolled first)",
        ));
    }
    if in_path {
        wanted.push(("400", "a path parameter is not a valid id"));
        wanted.push(("404", "no such resource the caller may see"));
    }
    if json_body {
        wanted.push(("400", "the body is not well-formed JSON"));
        wanted.push(("413", "the body is larger than 256 KiB"));
        wanted.push(("415", "the body is not sent as application/json"));
    }
    if json_body || in_query {
        wanted.push((
            "422",
            "a field or query parameter is missing, of the wrong type or out of range",
        ));
    }
    let responses = &mut op.responses.responses;
    for (status, why) in wanted {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem_response(why)));
    }
    for (status, r) in responses.iter_mut() {
        let RefOr::T(r) = r else { continue };
        // OpenAPI requires a description on every response.
        if r.description.is_empty() {
            r.description = status
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("response")
                .to_owned();
        }
        if r.content
            .get("application/json")
            .is_some_and(is_problem_content)
            && let Some(c) = r.content.shift_remove("application/json")
        {
            r.content.insert(error::PROBLEM_JSON.to_owned(), c);
        }
    }
}

fn problem_response(why: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(why)
        .content(
            error::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn is_problem_content(c: &utoipa::openapi::RefOr<utoipa::openapi::Content>) -> bool {
    use utoipa::openapi::RefOr;
    matches!(c, RefOr::T(c) if matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")))
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Response {
    if *s.shutdown.borrow() {
        return error::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Shutting down",
            "this node is shutting down",
        );
    }
    let unready = s.workers.unready();
    if !unready.is_empty() {
        let detail = unready
            .iter()
            .map(|u| format!("{}: {}", u.worker, u.reason))
            .collect::<Vec<_>>()
            .join("; ");
        tracing::warn!(%detail, "not ready: a critical background worker is not running");
        return error::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Not ready",
            format!("a critical background worker is not running ({detail})"),
        );
    }
    match s.store.ready().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            error::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Not ready",
                "the store is not available",
            )
        }
    }
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let mut m = s.metrics.render();
        s.workers.render(&mut m);
        m
    })
}

async fn not_found() -> Response {
    error::problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> Response {
    error::problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this endpoint does not accept that method",
    )
}

/// Every error the API sends is problem+json: a refusal the framework made
/// before a handler ran (a path id or query string that does not parse, a
/// body it could not read) is rewritten here. Pages keep their own errors.
async fn problems_only(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if api && error::is_bare_error(&resp) {
        error::reject_as_problem(resp).await
    } else {
        resp
    }
}

/// Count and time every request, and set the headers every response carries.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    s.metrics
        .request(resp.status().as_u16(), started.elapsed().as_secs_f64());
    let h = resp.headers_mut();
    if s.config.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages set their own policy (script and style from 'self'); everything else gets none.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if api {
        // Responses may carry PHI: never cache them.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

type Handler = axum::routing::MethodRouter<AppState>;

/// Every route of the API: method, path under `/api/v1`, handler. The
/// router is built from this table, and the authorization matrix test walks
/// it, so no endpoint can be added without being tested for access.
fn api_routes() -> Vec<(&'static str, &'static str, Handler)> {
    vec![
        ("POST", "/sessions", post(api::create_session)),
        (
            "DELETE",
            "/sessions/current",
            axum::routing::delete(privacy::logout),
        ),
        ("GET", "/me", get(api::me)),
        ("GET", "/me/access-log", get(privacy::my_access_log)),
        ("POST", "/me/mfa/totp", post(mfa::start)),
        ("POST", "/me/mfa/totp/verify", post(mfa::finish)),
        ("POST", "/messages", post(api::create_message)),
        ("POST", "/calls", post(api::create_call)),
        ("POST", "/triage", post(console::live_triage)),
        ("GET", "/threads/{id}", get(api::get_thread)),
        (
            "GET",
            "/threads/{id}/collaborators",
            get(privacy::list_collaborators),
        ),
        (
            "POST",
            "/threads/{id}/collaborators",
            post(privacy::add_collaborator),
        ),
        (
            "DELETE",
            "/threads/{id}/collaborators/{user_id}",
            axum::routing::delete(privacy::remove_collaborator),
        ),
        ("GET", "/members", get(console::intake::search_members)),
        ("GET", "/members/{id}", get(privacy::get_member)),
        (
            "GET",
            "/members/{id}/access-log",
            get(privacy::member_access_log),
        ),
        (
            "POST",
            "/members/{id}/break-glass",
            post(privacy::break_glass),
        ),
        ("GET", "/members/{id}/proxies", get(privacy::member_proxies)),
        ("POST", "/members/{id}/proxies", post(privacy::grant_proxy)),
        (
            "DELETE",
            "/members/{id}/proxies/{user_id}",
            axum::routing::delete(privacy::revoke_proxy),
        ),
        ("GET", "/me/proxies", get(privacy::my_proxies)),
        ("POST", "/messages/{id}/redact", post(privacy::redact)),
        (
            "POST",
            "/attachments",
            // Uploads are streamed and limited per file by the handler.
            post(attachments::upload).layer(DefaultBodyLimit::disable()),
        ),
        ("GET", "/attachments/{id}", get(attachments::get_attachment)),
        (
            "GET",
            "/attachments/{id}/content",
            get(attachments::content),
        ),
        (
            "POST",
            "/attachments/{id}/export",
            post(attachments::export),
        ),
        ("GET", "/members/{id}/consents", get(privacy::consents)),
        ("POST", "/members/{id}/consents", post(privacy::set_consent)),
        ("GET", "/queues", get(api::list_queues)),
        ("GET", "/tickets", get(api::list_tickets)),
        ("GET", "/tickets/{id}", get(api::get_ticket)),
        ("POST", "/tickets/{id}/replies", post(api::reply)),
        ("POST", "/tickets/{id}/assign", post(api::assign)),
        ("POST", "/tickets/{id}/transitions", post(api::transition)),
        ("GET", "/tickets/{id}/pages", get(safety::ticket_pages)),
        ("POST", "/tickets/{id}/clearance", post(safety::clearance)),
        ("POST", "/tickets/{id}/review", post(safety::clear_review)),
        (
            "POST",
            "/tickets/{id}/judgement-marks",
            post(safety::mark_judgement),
        ),
        ("GET", "/judgement-marks", get(safety::judgement_marks)),
        ("POST", "/tickets/{id}/priority", post(safety::priority)),
        ("POST", "/tickets/{id}/visits", post(safety::book_visit)),
        ("GET", "/events", get(sse::events)),
        ("GET", "/pages", get(safety::my_pages)),
        ("POST", "/pages/{id}/ack", post(safety::ack_page)),
        ("GET", "/teams/{id}/rota", get(safety::get_rota)),
        (
            "PUT",
            "/teams/{id}/rota",
            axum::routing::put(safety::put_rota),
        ),
        ("GET", "/safety-reviews", get(safety::safety_reviews)),
        (
            "POST",
            "/safety-reviews/{id}/resolve",
            post(safety::resolve_review),
        ),
        ("GET", "/reports/safety", get(safety::safety_report)),
        (
            "GET",
            "/privacy/break-glass",
            get(privacy::break_glass_queue),
        ),
        (
            "POST",
            "/privacy/break-glass/{id}/review",
            post(privacy::review_break_glass),
        ),
        ("GET", "/admin/teams", get(admin::list_teams)),
        ("POST", "/admin/teams", post(admin::post_team)),
        (
            "DELETE",
            "/admin/teams/{id}/members/{user_id}",
            axum::routing::delete(admin::remove_team_member),
        ),
        ("GET", "/admin/users", get(admin::list_users)),
        (
            "POST",
            "/admin/users/{id}/revoke-sessions",
            post(privacy::revoke_sessions),
        ),
        ("POST", "/admin/staff", post(admin::post_staff)),
        ("GET", "/admin/members", get(admin::list_members)),
        ("POST", "/admin/members", post(admin::post_member)),
        ("POST", "/admin/proxies", post(admin::post_proxy)),
        ("GET", "/admin/settings", get(safety::get_settings)),
        (
            "PUT",
            "/admin/settings",
            axum::routing::put(safety::put_settings),
        ),
        ("GET", "/admin/webhooks", get(safety::list_webhooks)),
        ("POST", "/admin/webhooks", post(safety::post_webhook)),
        (
            "GET",
            "/admin/webhooks/deliveries",
            get(safety::list_deliveries),
        ),
        (
            "POST",
            "/admin/webhooks/deliveries/{id}/replay",
            post(safety::replay_delivery),
        ),
        ("GET", "/openapi.json", get(openapi)),
    ]
}

/// The API's routes as (method, full path), for tests and tools.
pub fn route_table() -> Vec<(&'static str, String)> {
    api_routes()
        .into_iter()
        .map(|(m, p, _)| (m, format!("/api/v1{p}")))
        .collect()
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let mut by_path: Vec<(&'static str, Handler)> = Vec::new();
    for (_, path, h) in api_routes() {
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(h),
            None => by_path.push((path, h)),
        }
    }
    let api = by_path
        .into_iter()
        .fold(Router::new(), |r, (path, h)| r.route(path, h));
    Router::new()
        .nest("/api/v1", api)
        .merge(console::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(problems_only))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}
