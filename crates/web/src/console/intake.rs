//! Call intake for contact-centre agents: find the caller (an audited
//! search, `GET /api/v1/members?q=`), type the call notes while the triage
//! engine reads them (live, through `POST /api/v1/triage`), see the
//! emergency script the moment a red flag appears, and save the call as a
//! triaged, routed ticket (`POST /api/v1/calls`).

use super::{PageResult, Viewer, console_frame, require_staff, when};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::Body;
use crate::privacy::shape;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use careline_core::Error;
use careline_core::authz::Grant;
use careline_core::ids::MemberId;
use careline_core::model::Role;
use careline_core::validate::MessageText;
use careline_store::MemberSummary;
use careline_triage::{Channel, Context};
use maud::html;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Roles that take calls, and so may ask for a live reading.
const CALL_TAKERS: [Role; 5] = [
    Role::Agent,
    Role::CareGuide,
    Role::Nurse,
    Role::Physician,
    Role::Supervisor,
];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageRequest {
    /// 1–20,000 characters once trimmed.
    #[schema(min_length = 1, max_length = 20000)]
    pub text: String,
}

/// A live reading of text being typed. Nothing is stored: the call is
/// triaged again, and recorded, when it is saved with `POST /api/v1/calls`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveTriage {
    #[serde(flatten)]
    pub judgement: crate::views::TriageView,
    /// For an emergency: the script to read to the caller now.
    pub agent_guidance: Option<String>,
}

/// Triage call notes as they are typed (staff who take calls only).
#[utoipa::path(post, path = "/api/v1/triage", tag = "calls", security(("bearer" = [])), request_body = TriageRequest,
    responses((status = 200, body = LiveTriage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn live_triage(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<TriageRequest>,
) -> ApiResult<Json<LiveTriage>> {
    p.require(
        &CALL_TAKERS,
        "call-takers-only",
        "live triage is for staff who take calls",
    )?;
    let text = MessageText::parse(&req.text)?;
    let j = s.engine.judge(
        text.as_str(),
        &Context {
            channel: Channel::CallNote,
            language: None,
        },
    );
    let agent_guidance = if j.disposition == careline_core::Disposition::Emergency {
        let settings = s.store.settings(p.org_id).await?;
        Some(
            settings
                .emergency
                .agent_guidance(&j, "named when the call is saved"),
        )
    } else {
        None
    };
    Ok(Json(LiveTriage {
        judgement: (&j).into(),
        agent_guidance,
    }))
}

/// Most members a call-taker's search returns.
const SEARCH_LIMIT: u32 = 20;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// At least 2 characters: part of a name, a phone number, the member's
    /// reference, or a date of birth (`1946-03-14` or `3/14/1946`).
    #[param(required = true, min_length = 2, max_length = 100)]
    pub q: Option<String>,
    /// At most 20 (the default).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberSearch {
    /// Best matches first: names that start with the words typed, then the rest by name.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<MemberSummary>,
}

/// Find a caller among the members you reach (care team, tag, page,
/// break-glass), ignoring case and accents. Each member returned is recorded
/// in their access history as a search by you.
#[utoipa::path(get, path = "/api/v1/members", tag = "calls", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = MemberSearch), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn search_members(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<MemberSearch>> {
    let limit = q.limit.unwrap_or(SEARCH_LIMIT).clamp(1, SEARCH_LIMIT);
    let items = s
        .store
        .search_members(&p, q.q.as_deref().unwrap_or_default(), limit, s.clock.now())
        .await?;
    Ok(Json(MemberSearch { items }))
}

/// Why a found member is reachable, when it is not the care team.
fn reach_note(g: Grant) -> Option<&'static str> {
    match g {
        Grant::Tagged => Some("tagged in"),
        Grant::Paged => Some("paged"),
        Grant::BreakGlass => Some("break-glass"),
        _ => None,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct IntakeQuery {
    q: Option<String>,
    member: Option<Uuid>,
}

pub async fn page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<IntakeQuery>,
) -> PageResult {
    require_staff(&v)?;
    if !CALL_TAKERS.contains(&v.p.role) {
        return Err(Error::forbidden(
            "call-takers-only",
            "call intake is for staff who take calls",
        )
        .into());
    }
    let typed = q.q.clone().unwrap_or_default();
    // The search is the store's: it looks only among members the caller
    // reaches, and records each one it returns in their access history.
    let (matches, refusal): (Vec<MemberSummary>, Option<String>) = if typed.trim().is_empty() {
        (Vec::new(), None)
    } else {
        match s
            .store
            .search_members(&v.p, &typed, SEARCH_LIMIT, s.clock.now())
            .await
        {
            Ok(found) => (found, None),
            Err(Error::Invalid(detail)) => (Vec::new(), Some(detail)),
            Err(e) => return Err(e.into()),
        }
    };
    let chosen = match q.member {
        Some(id) => match s.store.member(&v.p, MemberId(id), s.clock.now()).await {
            Ok((m, g)) => Some(shape(&m, v.p.role, g)),
            Err(e) if super::glass::may_offer(&v, &e) => {
                let detail = match &e {
                    Error::Forbidden { detail, .. } => detail.clone(),
                    _ => String::new(),
                };
                return Ok(super::glass::offer(
                    &s,
                    &v,
                    MemberId(id),
                    "this caller's record",
                    &detail,
                ));
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let main = html! {
        main id="main" class="intake" {
            h1 { "Call intake" }
            section class="card" aria-labelledby="lookup-h" {
                h2 id="lookup-h" { "Find the caller" }
                form method="get" action="/console/calls" class="filters" role="search" {
                    div class="field inline" {
                        label for="q" { "Name, phone, date of birth or member ref" }
                        input id="q" name="q" type="search" value=(typed) autocomplete="off"
                            minlength="2" maxlength="100" aria-describedby="q-hint";
                    }
                    button type="submit" { "Search" }
                    p id="q-hint" class="muted small" {
                        "At least 2 characters. Only members on your teams or shared with you are searched; each member found is recorded in their access history."
                    }
                }
                @if let Some(detail) = &refusal {
                    p class="notice error" role="alert" { (detail) }
                } @else if !typed.trim().is_empty() {
                    @if matches.is_empty() {
                        p role="status" { "No member you can reach matches." }
                    } @else {
                        p class="muted small" role="status" {
                            (matches.len()) @if matches.len() == 1 { " member found" } @else { " members found" }
                        }
                        ul class="results" {
                            @for m in &matches {
                                li {
                                    a href={"/console/calls?member=" (m.id.0)} { (m.name) }
                                    span class="muted" {
                                        @if let Some(d) = &m.date_of_birth { " · born " (d) }
                                        @if let Some(ph) = &m.phone { " · " (ph) }
                                        @if let Some(r) = &m.external_ref { " · " (r) }
                                        " · " (m.team_name)
                                    }
                                    @if let Some(note) = reach_note(m.access) {
                                        " " span class="badge routine" { (note) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(m) = &chosen {
                section class="card" aria-labelledby="caller-h" {
                    h2 id="caller-h" { "Caller: " (m.name) }
                    dl class="facts" {
                        @if let Some(d) = &m.date_of_birth { dt { "Born" } dd { (d) } }
                        @if let Some(p) = &m.plan { dt { "Plan" } dd { (p) } }
                        @if let Some(p) = &m.phone { dt { "Phone" } dd { (p) } }
                        dt { "Language" } dd { (m.language) }
                    }
                }
                section class="card" aria-labelledby="notes-h" {
                    h2 id="notes-h" { "Call notes" }
                    form data-api="/api/v1/calls" data-after="call" {
                        input type="hidden" name="member_id" value=(m.id);
                        div class="field" {
                            label for="notes" { "What the caller says" }
                            textarea id="notes" name="notes" rows="6" required data-live-triage="#live-triage" {}
                        }
                        div id="live-triage" class="live" aria-live="polite" {
                            p class="muted" { "Triage appears here as you type." }
                        }
                        div class="alarm-box" data-script hidden role="alert" {
                            h3 { "Emergency: read this to the caller now" }
                            p data-script-text {}
                        }
                        div class="notice" role="alert" data-error hidden {}
                        div class="notice ok" role="status" data-result hidden {}
                        button type="submit" class="primary" { "Save call" }
                    }
                }
            }
            p class="muted small" { "Opened " (when(s.clock.now())) }
        }
    };
    Ok(console_frame(&v, "Call intake", "/console/calls", main).into_response())
}
