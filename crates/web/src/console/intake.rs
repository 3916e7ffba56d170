//! Call intake for contact-centre agents: find the caller, type the call
//! notes while the triage engine reads them (live, through
//! `POST /api/v1/triage`), see the emergency script the moment a red flag
//! appears, and save the call as a triaged, routed ticket (`POST /api/v1/calls`).

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
use careline_core::ids::MemberId;
use careline_core::model::Role;
use careline_core::validate::MessageText;
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
    let needle = q.q.clone().unwrap_or_default().trim().to_lowercase();
    // The lookup lists names only, of members on the caller's teams; the
    // record itself is read (and that read recorded) once one is chosen.
    let matches: Vec<(Uuid, String)> = if needle.is_empty() {
        Vec::new()
    } else {
        s.store
            .members(v.p.org_id)
            .await?
            .into_iter()
            .filter(|m| v.p.sees_team(m.team_id))
            .filter(|m| m.name.to_lowercase().contains(&needle))
            .take(20)
            .map(|m| (m.id.0, m.name))
            .collect()
    };
    let chosen = match q.member {
        Some(id) => Some(
            s.store
                .member(&v.p, MemberId(id), s.clock.now())
                .await
                .map(|(m, g)| shape(&m, v.p.role, g))?,
        ),
        None => None,
    };
    let main = html! {
        main id="main" class="intake" {
            h1 { "Call intake" }
            section class="card" aria-labelledby="lookup-h" {
                h2 id="lookup-h" { "Find the caller" }
                form method="get" action="/console/calls" class="filters" {
                    div class="field inline" {
                        label for="q" { "Member name" }
                        input id="q" name="q" value=(q.q.clone().unwrap_or_default()) autocomplete="off";
                    }
                    button type="submit" { "Search" }
                }
                @if !needle.is_empty() {
                    @if matches.is_empty() {
                        p { "No member on your teams matches." }
                    } @else {
                        ul class="results" {
                            @for (id, name) in &matches {
                                li { a href={"/console/calls?member=" (id)} { (name) } }
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
