//! Break-glass from the console. When a nurse or physician opens a ticket or
//! a caller outside their care team, the domain refuses (`not-on-care-team`);
//! instead of a bare refusal the console explains the rule and offers to
//! break the glass: a required reason, access for a limited time, privacy
//! officers alerted and the reason reviewed. The form posts to
//! `POST /api/v1/members/{id}/break-glass`; the page then reloads with access.

use super::{Viewer, console_frame};
use crate::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use careline_core::Error;
use careline_core::ids::MemberId;
use maud::html;

/// Whether a refusal is one a clinician may answer by breaking the glass.
pub fn may_offer(v: &Viewer, e: &Error) -> bool {
    v.p.role.is_clinical()
        && matches!(
            e,
            Error::Forbidden {
                rule: "not-on-care-team",
                ..
            }
        )
}

/// The refusal, explained, with the break-glass form (403: the page itself was not served).
pub fn offer(s: &AppState, v: &Viewer, member: MemberId, what: &str, detail: &str) -> Response {
    let minutes = s.config.break_glass.as_mins();
    let lasts = if minutes % 60 == 0 {
        let h = minutes / 60;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else {
        format!("{minutes} minutes")
    };
    let main = html! {
        main id="main" class="narrow glass" {
            h1 { "You are not on this member's care team" }
            p class="notice warn" role="alert" { "You cannot open " (what) ": " (detail) "." }
            section class="card" aria-labelledby="glass-h" {
                h2 id="glass-h" { "Break the glass" }
                p {
                    "If the member needs you now (an emergency, or you are covering for their team), you may open their record anyway. "
                    "Access lasts " (lasts) ". The privacy officers are alerted at once and will review your reason, "
                    "and every read is recorded in the member's access history."
                }
                p { "Otherwise, ask someone on the member's care team to tag you into the conversation." }
                form data-api={"/api/v1/members/" (member.0) "/break-glass"} data-confirm="Break the glass? Privacy officers will review your reason." {
                    div class="field" {
                        label for="glass-reason" { "Reason (required, at least 10 characters)" }
                        textarea id="glass-reason" name="reason" rows="3" required minlength="10" maxlength="1000"
                            aria-describedby="glass-reason-hint" {}
                        p id="glass-reason-hint" class="muted small" { "Say what the clinical need is; it is shown to the privacy officers." }
                    }
                    div class="notice" role="alert" data-error hidden {}
                    button type="submit" class="danger" { "Break the glass" }
                }
            }
            p { a href="/console" { "Back to the queues" } }
        }
    };
    (
        StatusCode::FORBIDDEN,
        console_frame(v, "Break the glass", "", main),
    )
        .into_response()
}
