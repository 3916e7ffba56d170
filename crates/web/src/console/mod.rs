//! The web pages: the staff console (`/console/…`) and the member portal
//! (`/portal/…`), served by the binary itself. Pages are rendered on the
//! server with maud (every interpolated value is HTML-escaped) from the same
//! store calls the JSON API makes, so the domain authorizes and records every
//! read exactly as it does for the API. Changes go through the JSON API from
//! one small script of our own (`assets/console.js`), which sends the CSRF
//! token, listens on the existing event stream and swaps server-rendered
//! fragments into the page. Static assets are compiled into the binary.

mod assets;
mod charts;
mod glass;
mod i18n;
pub mod intake;
mod login;
mod oversight;
mod portal;
mod sharing;
mod staff;
mod thread;

pub use intake::live_triage;

use crate::AppState;
use crate::auth::{self, Auth};
use crate::error::ApiError;
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use careline_core::Error;
use careline_core::authz::Principal;
use careline_core::model::Role;
use maud::{DOCTYPE, Markup, html};

/// The policy for pages: our own script, style and images, nothing inline,
/// requests only back to this origin.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every page route. Pages read with the session cookie; anything that
/// changes state goes to `/api/v1` with the CSRF token.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::page))
        .route("/lang/{code}", get(i18n::switch))
        .route("/assets/{name}", get(assets::serve))
        .route("/portal", get(portal::inbox))
        .route("/portal/threads/{id}", get(portal::thread_page))
        .route(
            "/portal/threads/{id}/fragment",
            get(portal::thread_fragment),
        )
        .route("/portal/access", get(portal::access_log))
        .route("/portal/sharing", get(sharing::page))
        .route("/portal/act/{member}", get(portal::act_for))
        .route("/console", get(staff::queues_page))
        .route("/console/fragments/tickets", get(staff::tickets_fragment))
        .route("/console/fragments/banner", get(staff::banner_fragment))
        .route("/console/tickets/{id}", get(staff::ticket_page))
        .route(
            "/console/tickets/{id}/fragment",
            get(staff::ticket_fragment),
        )
        .route("/console/calls", get(intake::page))
        .route("/console/safety", get(oversight::safety_page))
        .route("/console/privacy", get(oversight::privacy_page))
        .route("/console/dashboard", get(oversight::dashboard_page))
        .layer(middleware::from_fn(page_headers))
}

/// Pages carry PHI and their own content policy.
async fn page_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn home(page: Option<Viewer>) -> Redirect {
    match page {
        Some(v) => Redirect::to(landing(v.p.role)),
        None => Redirect::to("/login"),
    }
}

/// Where each role starts.
pub fn landing(role: Role) -> &'static str {
    match role {
        Role::Member | Role::Proxy => "/portal",
        Role::SafetyReviewer => "/console/safety",
        Role::PrivacyOfficer => "/console/privacy",
        Role::Admin | Role::Service => "/console/dashboard",
        _ => "/console",
    }
}

/// The signed-in person looking at a page, and the anti-forgery token the
/// page's script must send with every change.
pub struct Viewer {
    pub p: Principal,
    pub csrf: String,
    /// The portal language the reader chose with the switch, if any.
    pub lang_cookie: Option<String>,
    /// The member a caregiver (or a member who is also a caregiver) chose to act for.
    pub acting_cookie: Option<String>,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let token = auth::request_token(parts).map_err(|_| to_login())?;
        match Auth::from_request_parts(parts, state).await {
            Ok(Auth(p)) => Ok(Viewer {
                p,
                csrf: auth::csrf_token(&token),
                lang_cookie: cookie(parts, "careline_lang").map(String::from),
                acting_cookie: cookie(parts, "careline_acting").map(String::from),
            }),
            Err(ApiError(Error::Unauthenticated(_))) => Err(to_login()),
            Err(ApiError(Error::Forbidden {
                rule: "mfa-enrolment-required",
                ..
            })) => Err(Redirect::to("/login?enrol=1").into_response()),
            Err(e) => Err(PageError(e.0).into_response()),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Viewer as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// A named cookie of the request.
pub use crate::auth::cookie;

/// A domain error shown as a page (or a fragment) rather than JSON.
#[derive(Debug)]
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError(e)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e.0)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self.0 {
            Error::Invalid(d) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid input", d),
            Error::Unprocessable { detail, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Not accepted", detail)
            }
            Error::Unauthenticated(_) => return Redirect::to("/login").into_response(),
            Error::Forbidden { detail, .. } => (StatusCode::FORBIDDEN, "Not allowed", detail),
            Error::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "Not found",
                format!("{what} not found"),
            ),
            Error::Conflict { detail, .. } => (StatusCode::CONFLICT, "Conflict", detail),
            Error::RateLimited { detail, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many attempts", detail)
            }
            Error::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", d),
            Error::Unsupported { detail, .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "File not accepted",
                detail,
            ),
            Error::TooLarge { detail, .. } => (StatusCode::PAYLOAD_TOO_LARGE, "Too large", detail),
            Error::Internal(d) => {
                tracing::error!(error = %d, "internal error on a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "something went wrong on our side; nothing was changed".to_owned(),
                )
            }
        };
        let body = bare(
            title,
            html! {
                main id="main" class="narrow" {
                    h1 { (title) }
                    p class="notice error" { (detail) }
                    p { a href="/" { "Back to the start page" } }
                }
            },
        );
        (status, body).into_response()
    }
}

pub type PageResult = Result<Response, PageError>;

/// The document around every page: landmarks, skip link, our stylesheet and
/// script, and the CSRF token for the script.
pub fn document(title: &str, lang: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(c) = csrf { meta name="csrf-token" content=(c); }
                title { (title) " · careline" }
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href=(assets::CSS_URL);
                script src=(assets::JS_URL) defer {}
            }
            body {
                a class="skip" href="#main" { (if lang == "es" { "Ir al contenido" } else { "Skip to content" }) }
                (body)
            }
        }
    }
}

fn bare(title: &str, main: Markup) -> Markup {
    document(title, "en", None, main)
}

/// The console's frame: header with navigation for the viewer's role, the
/// live escalation banner, then the page.
pub fn console_frame(v: &Viewer, title: &str, current: &str, main: Markup) -> Markup {
    let role = v.p.role;
    let mut nav: Vec<(&str, &str)> = Vec::new();
    if role.works_queues() {
        nav.push(("/console", "Queues"));
    }
    if matches!(
        role,
        Role::Agent | Role::CareGuide | Role::Nurse | Role::Physician | Role::Supervisor
    ) {
        nav.push(("/console/calls", "Call intake"));
    }
    if matches!(role, Role::SafetyReviewer | Role::Supervisor) {
        nav.push(("/console/safety", "Safety review"));
    }
    if matches!(role, Role::SafetyReviewer | Role::Supervisor | Role::Admin) {
        nav.push(("/console/dashboard", "Dashboard"));
    }
    if role == Role::PrivacyOfficer {
        nav.push(("/console/privacy", "Privacy"));
    }
    let body = html! {
        header class="top" {
            a class="brand" href="/" { img src="/assets/icon.svg" alt="" width="24" height="24"; " careline" }
            nav aria-label="Console" {
                ul {
                    @for (href, label) in &nav {
                        li { a href=(href) aria-current=[(*href == current).then_some("page")] { (label) } }
                    }
                }
            }
            div class="who" {
                span { (v.p.name) " · " (role_label(role)) }
                button type="button" class="link" data-logout { "Sign out" }
            }
        }
        div id="banner" data-fragment="/console/fragments/banner"
            data-on="page.created page.escalated page.acknowledged escalation.alarm ready"
            aria-live="assertive" {}
        (main)
    };
    document(title, "en", Some(&v.csrf), body)
}

pub fn role_label(r: Role) -> &'static str {
    match r {
        Role::CareGuide => "care guide",
        Role::Agent => "agent",
        Role::Nurse => "nurse",
        Role::Physician => "physician",
        Role::Supervisor => "supervisor",
        Role::SafetyReviewer => "safety reviewer",
        Role::PrivacyOfficer => "privacy officer",
        Role::Admin => "administrator",
        Role::Service => "service account",
        Role::Member => "member",
        Role::Proxy => "caregiver",
    }
}

/// A timestamp the script shows in the reader's local time.
pub fn when(t: jiff::Timestamp) -> Markup {
    let iso = t.to_string();
    let short = t.strftime("%Y-%m-%d %H:%M UTC").to_string();
    html! { time datetime=(iso) { (short) } }
}

/// A countdown to a deadline, kept current by the script.
pub fn countdown(t: Option<jiff::Timestamp>, label: &str) -> Markup {
    html! {
        @if let Some(t) = t {
            span class="clock" data-due=(t.to_string()) { (label) " due " (when(t)) }
        } @else {
            span class="clock none" { (label) ": —" }
        }
    }
}

/// Pages are only for staff (console) or only for members (portal).
pub fn require_staff(v: &Viewer) -> Result<(), PageError> {
    if v.p.role.is_staff() {
        Ok(())
    } else {
        Err(PageError(Error::forbidden(
            "staff-only",
            "the console is for staff; members use the portal at /portal",
        )))
    }
}
