//! The portal's privacy controls ("Sharing"): a member chooses which
//! sensitive categories of their record clinicians outside their care team
//! may see, and who may act for them as a caregiver, with what scope and for
//! how long; a caregiver sees whom they act for and can step back. Every
//! change goes through the JSON API (`/api/v1/members/{id}/consents`,
//! `/api/v1/members/{id}/proxies`), which authorizes and records it.

use super::i18n::{Lang, t};
use super::portal::{Portal, frame, portal};
use super::{PageError, PageResult, Viewer, document, when};
use crate::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use careline_core::Error;
use careline_core::authz::ProxyScope;
use careline_core::model::{Role, SensitiveCategory};
use careline_store::ProxyEntry;
use maud::{Markup, html};

/// The categories, in the order the page lists them, with their text keys.
const CATEGORIES: [(SensitiveCategory, &str); 4] = [
    (SensitiveCategory::BehavioralHealth, "behavioral_health"),
    (SensitiveCategory::SubstanceUse, "substance_use"),
    (
        SensitiveCategory::SexualReproductiveHealth,
        "sexual_reproductive_health",
    ),
    (SensitiveCategory::Hiv, "hiv"),
];

/// A scope in plain words, said to the member (`yours`) or to their caregiver.
fn scope_text(s: ProxyScope, l: Lang, yours: bool) -> &'static str {
    match (s, yours) {
        (ProxyScope::Messages, true) => t(l, "scope_messages"),
        (ProxyScope::Record, true) => t(l, "scope_record"),
        (ProxyScope::Full, true) => t(l, "scope_full"),
        (ProxyScope::Messages, false) => t(l, "scope_messages_other"),
        (ProxyScope::Record, false) => t(l, "scope_record_other"),
        (ProxyScope::Full, false) => t(l, "scope_full_other"),
    }
}

/// "Since … · Until …" for a grant.
fn period(e: &ProxyEntry, l: Lang) -> Markup {
    html! {
        p class="muted small" {
            (t(l, "since")) " " (when(e.created_at)) " · "
            @if let Some(x) = e.expires_at { (t(l, "until")) " " (when(x)) } @else { (t(l, "no_end")) }
        }
    }
}

fn category_text(key: &str, l: Lang) -> (&'static str, &'static str) {
    match key {
        "behavioral_health" => (
            t(l, "cat_behavioral_health"),
            t(l, "cat_behavioral_health_about"),
        ),
        "substance_use" => (t(l, "cat_substance_use"), t(l, "cat_substance_use_about")),
        "sexual_reproductive_health" => (
            t(l, "cat_sexual_reproductive_health"),
            t(l, "cat_sexual_reproductive_health_about"),
        ),
        _ => (t(l, "cat_hiv"), t(l, "cat_hiv_about")),
    }
}

/// One form per category: the state in words and the one button that changes it.
fn consents(pt: &Portal, consented: &[SensitiveCategory]) -> Markup {
    let l = pt.lang;
    let api = format!("/api/v1/members/{}/consents", pt.member.0);
    html! {
        @let yours = pt.acting_name.is_none();
        p { (t(l, if yours { "consent_intro" } else { "consent_intro_other" })) }
        ul class="consents" {
            @for (cat, key) in CATEGORIES {
                @let on = consented.contains(&cat);
                @let (name, about) = category_text(key, l);
                li class={"card consent" @if on { " on" }} data-category=(key) {
                    h3 id={"cat-" (key)} { (name) }
                    p class="explain" { (about) }
                    p class="state" id={"cat-" (key) "-state"} {
                        span class={"dot" @if on { " on" }} aria-hidden="true" {}
                        (if on { t(l, "shared") } else if yours { t(l, "not_shared") } else { t(l, "not_shared_other") })
                    }
                    form data-api=(api) {
                        input type="hidden" name="category" value=(key);
                        input type="hidden" name="granted" data-type="bool" value=(if on { "false" } else { "true" });
                        div class="notice" role="alert" data-error hidden {}
                        button type="submit" class=[(!on).then_some("primary")]
                            aria-describedby={"cat-" (key) " cat-" (key) "-state"} {
                            (if on { t(l, "stop_sharing") } else { t(l, "share") })
                        }
                    }
                }
            }
        }
    }
}

/// The member's caregivers, with a way to end each one's access and to add one.
fn caregivers(pt: &Portal, list: &[ProxyEntry]) -> Markup {
    let l = pt.lang;
    let member = pt.member.0;
    html! {
        p { (t(l, "caregivers_intro")) }
        @if list.is_empty() {
            p { (t(l, "no_caregivers")) }
        } @else {
            ul class="caregivers" {
                @for e in list {
                    li class="card" data-caregiver=(e.proxy_name) {
                        h3 { (e.proxy_name) }
                        p { (scope_text(e.scope, l, true)) }
                        (period(e, l))
                        form data-api={"/api/v1/members/" (member) "/proxies/" (e.proxy_user_id.0)}
                            data-method="DELETE" data-confirm=(t(l, "end_access_confirm")) {
                            div class="notice" role="alert" data-error hidden {}
                            button type="submit" aria-label={(t(l, "end_access")) ": " (e.proxy_name)} { (t(l, "end_access")) }
                        }
                    }
                }
            }
        }
        form class="card" data-api={"/api/v1/members/" (member) "/proxies"} aria-labelledby="add-cg-h" {
            h3 id="add-cg-h" { (t(l, "add_caregiver")) }
            div class="field" {
                label for="cg-username" { (t(l, "caregiver_username")) }
                input id="cg-username" name="username" type="text" required autocomplete="off"
                    maxlength="200" aria-describedby="cg-username-hint";
                p id="cg-username-hint" class="muted small" { (t(l, "caregiver_username_hint")) }
            }
            fieldset class="field" {
                legend { (t(l, "what_they_may_do")) }
                @for s in [ProxyScope::Messages, ProxyScope::Record, ProxyScope::Full] {
                    div class="choice" {
                        input type="radio" name="scope" id={"cg-scope-" (s.as_str())} value=(s.as_str())
                            checked[s == ProxyScope::Messages] required;
                        label for={"cg-scope-" (s.as_str())} { (scope_text(s, l, true)) }
                    }
                }
            }
            div class="field" {
                label for="cg-until" { (t(l, "until_optional")) }
                input id="cg-until" name="expires_at" type="datetime-local" data-type="datetime" data-optional;
            }
            div class="notice" role="alert" data-error hidden {}
            button type="submit" class="primary" { (t(l, "give_access")) }
        }
    }
}

/// For a caregiver: the people they act for, each with a way to step back.
fn helping(v: &Viewer, l: Lang, list: &[ProxyEntry]) -> Markup {
    html! {
        p { (t(l, "you_help_intro")) }
        ul class="caregivers" {
            @for e in list {
                li class="card" data-helping=(e.member_name) {
                    h3 { (e.member_name) }
                    p { (scope_text(e.scope, l, false)) }
                    (period(e, l))
                    form data-api={"/api/v1/members/" (e.member_id.0) "/proxies/" (v.p.user_id.0)}
                        data-method="DELETE" data-confirm=(t(l, "step_back_confirm")) data-next="/portal/sharing" {
                        div class="notice" role="alert" data-error hidden {}
                        button type="submit" aria-label={(t(l, "step_back")) ": " (e.member_name)} { (t(l, "step_back")) }
                    }
                }
            }
        }
    }
}

pub async fn page(State(s): State<AppState>, v: Viewer) -> PageResult {
    let now = s.clock.now();
    // A caregiver who stepped back from everyone still gets a page, not an error.
    if v.p.role == Role::Proxy && v.p.proxy_for.is_empty() {
        let l = v
            .lang_cookie
            .as_deref()
            .and_then(Lang::parse)
            .unwrap_or(Lang::En);
        let body = html! {
            main id="main" class="portal-main narrow" {
                h1 { (t(l, "sharing_title")) }
                p role="status" { (t(l, "nobody_to_help")) }
                button type="button" class="link" data-logout { (t(l, "sign_out")) }
            }
        };
        return Ok(document(t(l, "sharing_title"), l.code(), Some(&v.csrf), body).into_response());
    }
    let pt = portal(&s, &v).await?;
    let l = pt.lang;
    let consented = match s.store.consents(&v.p, pt.member).await {
        Ok(c) => Some(c),
        Err(Error::Forbidden {
            rule: "outside-proxy-scope",
            ..
        }) => None,
        Err(e) => return Err(PageError(e)),
    };
    // Only the member themself manages who acts for them.
    let own = v.p.member_id == Some(pt.member);
    let proxies = if own {
        Some(s.store.member_proxies(&v.p, pt.member, now).await?)
    } else {
        None
    };
    let helps = if v.p.role == Role::Proxy {
        s.store.my_proxy_grants(&v.p, now).await?
    } else {
        Vec::new()
    };
    let main = html! {
        main id="main" class="portal-main sharing" {
            h1 { (t(l, "sharing_title")) }
            section class="card-list" aria-labelledby="consent-h" {
                h2 id="consent-h" {
                    (t(l, "consent_h"))
                    @if let Some(n) = &pt.acting_name { " · " (n) }
                }
                @match &consented {
                    Some(c) => (consents(&pt, c)),
                    None => p class="notice" { (t(l, "no_record_scope")) },
                }
            }
            @if let Some(list) = &proxies {
                section aria-labelledby="cg-h" {
                    h2 id="cg-h" { (t(l, "caregivers_h")) }
                    (caregivers(&pt, list))
                }
            }
            @if !helps.is_empty() {
                section aria-labelledby="help-h" {
                    h2 id="help-h" { (t(l, "you_help_h")) }
                    (helping(&v, l, &helps))
                }
            }
        }
    };
    Ok(frame(&v, &pt, t(l, "sharing_title"), "/portal/sharing", main).into_response())
}
