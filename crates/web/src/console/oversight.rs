//! Oversight pages: the safety-review queue (failures to clinically
//! escalate found by the audit), break-glass and access-history review for
//! privacy officers, and the service and safety dashboard for supervisors.

use super::charts::{self, Bar};
use super::{PageResult, Viewer, console_frame, require_staff, when};
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use careline_core::ids::MemberId;
use careline_store::TicketFilter;
use jiff::Timestamp;
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Default, Deserialize)]
pub struct ReviewQuery {
    status: Option<String>,
}

pub async fn safety_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<ReviewQuery>,
) -> PageResult {
    require_staff(&v)?;
    let status = q
        .status
        .clone()
        .filter(|s| !s.is_empty())
        .or(Some("open".into()));
    let all = status.as_deref() == Some("all");
    if status.as_deref() == Some("marks") {
        return marks_page(&s, &v).await;
    }
    let items = s
        .store
        .safety_reviews(&v.p, if all { None } else { status.clone() })
        .await?;
    let text = |v: &serde_json::Value, k: &str| -> String {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let main = html! {
        main id="main" {
            h1 { "Safety review" }
            p { "Contacts the retrospective audit found without a timely clinical escalation. Resolve each with what was found and done." }
            nav aria-label="Review status" class="tabs" {
                a href="/console/safety?status=open" aria-current=[(!all).then_some("page")] { "Open" }
                a href="/console/safety?status=all" aria-current=[all.then_some("page")] { "All" }
                a href="/console/safety?status=marks" { "Clinicians' marks" }
            }
            @if items.is_empty() {
                p { "Nothing to review." }
            }
            @for r in &items {
                article class="card review" aria-labelledby={"r-" (r.id.0)} {
                    h2 id={"r-" (r.id.0)} {
                        span class={"badge " (r.disposition)} { (r.disposition) } " "
                        (text(&r.finding, "summary"))
                    }
                    dl class="facts" {
                        dt { "Found" } dd { (when(r.created_at)) }
                        dt { "Protocol set" } dd { (r.protocol_version) }
                        dt { "Ticket" } dd { a href={"/console/tickets/" (r.ticket_id.0)} { (r.ticket_id.0) } }
                        dt { "Status" } dd { (r.status) }
                        @if let Some(res) = &r.resolution { dt { "Resolution" } dd { (res) } }
                    }
                    @if r.status == "open" {
                        form data-api={"/api/v1/safety-reviews/" (r.id.0) "/resolve"} {
                            div class="field" {
                                label for={"note-" (r.id.0)} { "Resolution note" }
                                textarea id={"note-" (r.id.0)} name="note" rows="2" required {}
                            }
                            div class="notice" role="alert" data-error hidden {}
                            button type="submit" { "Resolve" }
                        }
                    }
                }
            }
        }
    };
    Ok(console_frame(&v, "Safety review", "/console/safety", main).into_response())
}

/// Clinicians' marks on triage judgements: what the engine said, what the
/// clinician says it should have been and why, with the member's words, and
/// the export the next protocol release trains on.
async fn marks_page(s: &AppState, v: &Viewer) -> PageResult {
    let marks = s.store.judgement_marks(&v.p, 500, s.clock.now()).await?;
    let main = html! {
        main id="main" {
            h1 { "Safety review" }
            nav aria-label="Review status" class="tabs" {
                a href="/console/safety?status=open" { "Open" }
                a href="/console/safety?status=all" { "All" }
                a href="/console/safety?status=marks" aria-current="page" { "Clinicians' marks" }
            }
            p {
                "Triage judgements nurses and physicians marked as wrong. "
                a href="/api/v1/judgement-marks?format=jsonl" download="judgement-marks.jsonl" { "Export as labelled JSON lines" }
                " (the triage corpus format; redacted messages are left out)."
            }
            @if marks.is_empty() {
                p { "No marks yet." }
            }
            @for mc in &marks {
                @let m = &mc.mark;
                article class="card review" aria-labelledby={"m-" (m.id.0)} {
                    h2 id={"m-" (m.id.0)} {
                        (m.direction.as_str().replace('_', "-")) ": judged "
                        span class={"badge " (m.judged.as_str())} { (m.judged.as_str()) }
                        ", should have been "
                        span class={"badge " (m.should_be.as_str())} { (m.should_be.as_str()) }
                    }
                    dl class="facts" {
                        dt { "Words" } dd { (mc.text.as_deref().unwrap_or("(redacted)")) }
                        dt { "Why" } dd { (m.note) }
                        dt { "By" } dd { (m.by_name) ", " (when(m.created_at)) }
                        dt { "Protocol set" } dd { (m.protocol_version) }
                        dt { "Ticket" } dd { a href={"/console/tickets/" (m.ticket_id.0)} { (m.ticket_id.0) } }
                    }
                }
            }
        }
    };
    Ok(console_frame(v, "Safety review", "/console/safety", main).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct PrivacyQuery {
    member: Option<Uuid>,
    all: Option<String>,
}

pub async fn privacy_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<PrivacyQuery>,
) -> PageResult {
    require_staff(&v)?;
    let all = q.all.is_some();
    let glass = s.store.break_glass_reviews(&v.p, !all).await?;
    let members = s
        .store
        .member_names(v.p.org_id, glass.iter().map(|b| b.member_id).collect())
        .await?;
    let log = match q.member {
        Some(m) => Some(s.store.access_log(&v.p, MemberId(m), 5000).await?),
        None => None,
    };
    let name_of = |id: MemberId| members.get(&id).cloned().unwrap_or_default();
    let main = html! {
        main id="main" {
            h1 { "Privacy" }
            section aria-labelledby="bg-h" {
                h2 id="bg-h" { "Break-glass accesses" }
                nav aria-label="Break-glass filter" class="tabs" {
                    a href="/console/privacy" aria-current=[(!all).then_some("page")] { "Unreviewed" }
                    a href="/console/privacy?all=1" aria-current=[all.then_some("page")] { "All" }
                }
                @if glass.is_empty() { p { "No break-glass accesses to review." } }
                @for b in &glass {
                    article class="card" {
                        h3 { (b.user_name) " opened " (name_of(b.member_id)) "’s record" }
                        p { a href={"/console/privacy?member=" (b.member_id.0)} { "Access history of " (name_of(b.member_id)) } }
                        dl class="facts" {
                            dt { "When" } dd { (when(b.created_at)) }
                            dt { "Until" } dd { (when(b.expires_at)) }
                            dt { "Reason given" } dd { (b.reason) }
                            @if let Some(n) = &b.review_note { dt { "Review" } dd { (n) } }
                        }
                        @if b.reviewed_at.is_none() {
                            form data-api={"/api/v1/privacy/break-glass/" (b.id) "/review"} {
                                div class="field" {
                                    label for={"bg-" (b.id)} { "Review note" }
                                    textarea id={"bg-" (b.id)} name="note" rows="2" required {}
                                }
                                div class="notice" role="alert" data-error hidden {}
                                button type="submit" { "Record review" }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="al-h" {
                h2 id="al-h" { "Access history of a member" }
                form method="get" action="/console/privacy" class="filters" {
                    div class="field inline" {
                        label for="member" { "Member ID" }
                        input id="member" name="member" value=[q.member] autocomplete="off" spellcheck="false" size="38";
                    }
                    button type="submit" { "Show" }
                }
                @if let Some(items) = &log {
                    @if items.is_empty() { p { "No one has read this member's data." } }
                    @else {
                        div class="table-wrap" {
                            table {
                                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Role" } th scope="col" { "What" } th scope="col" { "Why" } } }
                                tbody {
                                    @for e in items {
                                        tr class={ @if e.why == "break_glass" { "flag" } } {
                                            td { (when(e.at)) } td { (e.name) } td { (e.role) } td { (e.what) } td { (e.why.replace('_', " ")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(console_frame(&v, "Privacy", "/console/privacy", main).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct Period {
    since: Option<String>,
    until: Option<String>,
}

/// A date from a date input, at the start of that day (UTC).
fn day(s: Option<&str>) -> Option<Timestamp> {
    let d: jiff::civil::Date = s?.parse().ok()?;
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

pub async fn dashboard_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<Period>,
) -> PageResult {
    require_staff(&v)?;
    let now = s.clock.now();
    let one_day = jiff::SignedDuration::from_hours(24);
    // `until` is inclusive of its whole day.
    let until = day(q.until.as_deref())
        .and_then(|t| t.checked_add(one_day).ok())
        .unwrap_or(now);
    let since = day(q.since.as_deref()).unwrap_or_else(|| {
        until
            .checked_sub(jiff::SignedDuration::from_hours(24 * 30))
            .unwrap_or(Timestamp::UNIX_EPOCH)
    });
    let r = s.store.safety_report(&v.p, since, until).await?;
    // Time to a clinician, for each red-flag disposition separately: an
    // emergency answered in ten minutes is a different fact from an urgent one.
    let by = |m: &std::collections::BTreeMap<String, Vec<i64>>, d: &str| -> Vec<i64> {
        let mut v = m.get(d).cloned().unwrap_or_default();
        v.sort_unstable();
        v
    };
    let per_disposition: Vec<(&'static str, Vec<i64>, Vec<i64>)> = ["emergency", "urgent"]
        .into_iter()
        .map(|d| {
            (
                d,
                by(&r.ack_ms_by_disposition, d),
                by(&r.reply_ms_by_disposition, d),
            )
        })
        .collect();
    // Service level: first responses in the period that met their target,
    // over the tickets the viewer's queues hold.
    let tickets = s
        .store
        .tickets(
            &v.p,
            TicketFilter {
                queue: None,
                status: None,
                priority: None,
                member: None,
                review_pending: false,
                limit: 1000,
            },
            now,
        )
        .await
        .unwrap_or_default();
    let (mut met, mut due) = (0u32, 0u32);
    for (t, _) in tickets
        .iter()
        .filter(|(t, _)| t.created_at >= since && t.created_at < until)
    {
        if let Some(d) = t.sla.first_response_due {
            match t.sla.first_response_at {
                Some(at) => {
                    due += 1;
                    if at <= d {
                        met += 1;
                    }
                }
                None if d < now => due += 1,
                None => {}
            }
        }
    }
    let attainment = (due > 0).then(|| f64::from(met) * 100.0 / f64::from(due));
    let routine = (r.contacts - r.emergency - r.urgent).max(0);
    let ack_bounds = [
        (30_000, "under 30 s"),
        (60_000, "30 s – 1 min"),
        (120_000, "1 – 2 min"),
        (300_000, "2 – 5 min"),
        (900_000, "5 – 15 min"),
    ];
    let reply_bounds = [
        (300_000, "under 5 min"),
        (900_000, "5 – 15 min"),
        (3_600_000, "15 – 60 min"),
        (14_400_000, "1 – 4 h"),
    ];
    let to_bars = |h: &[(&'static str, f64)], class: &'static str| -> Vec<Bar<'static>> {
        h.iter()
            .map(|(l, c)| Bar {
                label: l,
                value: *c,
                class,
            })
            .collect()
    };
    let since_s = since.strftime("%Y-%m-%d").to_string();
    let until_s = until
        .checked_sub(one_day)
        .unwrap_or(until)
        .strftime("%Y-%m-%d")
        .to_string();
    let main = html! {
        main id="main" class="dashboard" {
            h1 { "Service and safety" }
            form method="get" action="/console/dashboard" class="filters" {
                div class="field inline" { label for="since" { "From" } input id="since" name="since" type="date" value=(since_s); }
                div class="field inline" { label for="until" { "To" } input id="until" name="until" type="date" value=(until_s); }
                button type="submit" { "Show" }
            }
            div class="kpis" {
                div class="kpi" { span class="n" { (r.contacts) } span { "contacts" } }
                div class="kpi" { span class="n" { (r.pages) } span { "pages" } }
                div class={"kpi" @if r.failures_to_escalate > 0 { " bad" }} { span class="n" { (r.failures_to_escalate) } span { "failures to escalate" } }
                div class="kpi" { span class="n" { (r.open_safety_reviews) } span { "open safety reviews" } }
                div class="kpi" { span class="n" { @match attainment { Some(a) => (format!("{a:.0}%")), None => "—" } } span { "first responses on time" } }
                div class="kpi" { span class="n" { (r.alarms) } span { "alarms" } }
            }
            div class="charts" {
                figure {
                    (charts::bars("vol", "Contacts by disposition", "Number of contacts in the period, by triage disposition", &[
                        Bar { label: "emergency", value: r.emergency as f64, class: "emergency" },
                        Bar { label: "urgent", value: r.urgent as f64, class: "urgent" },
                        Bar { label: "routine", value: routine as f64, class: "routine" },
                    ], ""))
                    figcaption { "Volumes" }
                }
                figure {
                    (charts::bars("pages", "Pages", "Pages sent, acknowledged, and alarms when a chain ran out", &[
                        Bar { label: "sent", value: r.pages as f64, class: "routine" },
                        Bar { label: "acknowledged", value: r.pages_acknowledged as f64, class: "ok" },
                        Bar { label: "alarms", value: r.alarms as f64, class: "emergency" },
                    ], ""))
                    figcaption { "Escalation" }
                }
            }
            section aria-labelledby="ttc-h" {
            h2 id="ttc-h" { "Time to clinician, by disposition" }
            div class="charts" {
                @for (d, ack, reply) in &per_disposition {
                    figure data-disposition=(d) {
                        (charts::bars(&format!("ack-{d}"), &format!("Time to acknowledgement, {d}"),
                            &format!("{d} red flags by time from commit to a clinician acknowledging the page"),
                            &to_bars(&charts::histogram(ack, &ack_bounds, "over 15 min"), d), ""))
                        figcaption {
                            span class={"badge " (d)} { (d) } " time to acknowledgement: "
                            (ack.len()) " acknowledged" (median_text(ack))
                        }
                    }
                    figure data-disposition=(d) {
                        (charts::bars(&format!("reply-{d}"), &format!("Time to clinician reply, {d}"),
                            &format!("{d} red flags by time from commit to the first reply by a nurse or physician"),
                            &to_bars(&charts::histogram(reply, &reply_bounds, "over 4 h"), d), ""))
                        figcaption {
                            span class={"badge " (d)} { (d) } " time to clinician reply: "
                            (reply.len()) " answered" (median_text(reply))
                        }
                    }
                }
            }
            }
            div class="charts" {
                figure {
                    (charts::bars("sla", "First responses on time", "Share of first responses that met their target", &[
                        Bar { label: "on time", value: attainment.unwrap_or(0.0), class: "ok" },
                    ], "%"))
                    figcaption { "SLA attainment (" (met) " of " (due) ")" }
                }
            }
            p class="muted small" { "Period " (when(since)) " to " (when(until)) }
        }
    };
    Ok(console_frame(&v, "Dashboard", "/console/dashboard", main).into_response())
}

/// ", median 1 min 05 s" for sorted durations in milliseconds (nothing when empty).
fn median_text(sorted: &[i64]) -> String {
    let Some(ms) = sorted.get(sorted.len() / 2) else {
        return String::new();
    };
    let s = ms / 1000;
    if s == 0 {
        ", median under 1 s".to_owned()
    } else if s >= 3600 {
        format!(", median {} h {:02} min", s / 3600, (s % 3600) / 60)
    } else {
        format!(", median {} min {:02} s", s / 60, s % 60)
    }
}
