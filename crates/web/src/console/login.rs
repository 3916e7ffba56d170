//! Sign-in for staff and members. The form posts to `POST /api/v1/sessions`
//! with `cookie: true` from the page script; a second factor is asked for
//! when the account has one, and enrolment is offered when the
//! organization requires one for the role and none is set up yet.

use super::document;
use axum::extract::Query;
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    enrol: Option<String>,
}

pub async fn page(Query(q): Query<LoginQuery>) -> Markup {
    let enrol = q.enrol.is_some();
    document(
        "Sign in",
        "en",
        None,
        html! {
            main id="main" class="narrow login" {
                h1 { img src="/assets/icon.svg" alt="" width="32" height="32"; " Sign in to careline" }
                p { "Members, caregivers and care-team staff sign in here. Inicie sesión aquí." }
                @if enrol {
                    p class="notice warn" role="status" {
                        "Your organization requires a second factor for your role. Sign in again to set one up."
                    }
                }
                form id="login" data-login novalidate {
                    div class="field" {
                        label for="username" { "Username" }
                        input id="username" name="username" type="email" autocomplete="username" required
                            placeholder="name@example.org";
                    }
                    div class="field" {
                        label for="password" { "Password" }
                        input id="password" name="password" type="password" autocomplete="current-password" required;
                    }
                    div class="field" id="totp-field" hidden {
                        label for="totp" { "6-digit code from your authenticator app" }
                        input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6";
                    }
                    div class="notice error" role="alert" data-error hidden {}
                    button type="submit" class="primary" { "Sign in" }
                }
                section id="enrol" hidden aria-labelledby="enrol-h" {
                    h2 id="enrol-h" { "Set up your second factor" }
                    p { "Add this key to an authenticator app, then type the 6-digit code it shows." }
                    p { code data-secret {} }
                    form data-enrol-verify {
                        div class="field" {
                            label for="enrol-code" { "Code" }
                            input id="enrol-code" name="code" inputmode="numeric" maxlength="6" required;
                        }
                        div class="notice error" role="alert" data-error hidden {}
                        button type="submit" class="primary" { "Confirm" }
                    }
                    div data-recovery hidden {
                        p { "Keep these one-time recovery codes somewhere safe, then sign in again with your code." }
                        ul data-codes {}
                        a href="/login" { "Sign in again" }
                    }
                }
            }
        },
    )
}
