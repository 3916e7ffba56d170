//! A live event stream answers to the caller as they are now, not as they
//! were when it connected: logout, an administrator's revocation, expiry,
//! leaving a team and a break-glass that runs out all reach open streams.

use crate::support::*;
use jiff::SignedDuration;
use serde_json::json;
use std::time::Duration;

const ROUTINE: &str = "Could you send a refill of my blood pressure pills to my pharmacy?";
const EMERGENCY: &str = "crushing chest pain going down my left arm and I am sweating";
/// Long enough for a stalled test to fail instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

async fn me(app: &App, token: &str, field: &str) -> String {
    app.me(token).await[field].as_str().unwrap().to_owned()
}

/// The stream's last event says the session ended, and why.
async fn assert_ended(stream: &mut careline::httpc::EventStream, reason: &str) {
    assert!(
        stream.wait_for("event: session-ended", WAIT).await,
        "the stream went on after its session ended: {}",
        stream.seen
    );
    let why = format!("\"reason\":\"{reason}\"");
    assert!(
        stream.wait_for(&why, WAIT).await,
        "the stream ended without saying {why}: {}",
        stream.seen
    );
}

#[tokio::test]
async fn logging_out_ends_the_live_stream_and_nothing_more_arrives() {
    let app = App::spawn().await;
    let guide = app.login("guide.north1").await;
    let mut stream = app.events(&guide).await;
    let r = app
        .call("DELETE", "/api/v1/sessions/current", Some(&guide), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_ended(&mut stream, "revoked").await;

    let member = app.login("member01").await;
    let out = app.send(&member, ROUTINE).await;
    let ticket = out["ticket"]["id"].as_str().unwrap();
    assert!(
        !stream.wait_for(ticket, Duration::from_secs(2)).await,
        "a logged-out user still received a member's ticket: {}",
        stream.seen
    );
}

#[tokio::test]
async fn an_administrator_revoking_a_users_sessions_ends_every_stream_they_hold() {
    let app = App::spawn().await;
    let laptop = app.login("nurse.north").await;
    let phone = app.login("nurse.north").await;
    let nurse_id = me(&app, &laptop, "id").await;
    let mut on_laptop = app.events(&laptop).await;
    let mut on_phone = app.events(&phone).await;
    let colleague = app.login("guide.north1").await;
    let mut untouched = app.events(&colleague).await;

    let admin = app.login("admin").await;
    let r = app
        .post(
            &format!("/api/v1/admin/users/{nurse_id}/revoke-sessions"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ended(&mut on_laptop, "revoked").await;
    assert_ended(&mut on_phone, "revoked").await;

    // The colleague's stream is not theirs to end: it still delivers.
    let member = app.login("member01").await;
    let out = app.send(&member, EMERGENCY).await;
    let ticket = out["ticket"]["id"].as_str().unwrap();
    assert!(untouched.wait_for(ticket, WAIT).await, "{}", untouched.seen);
    assert!(!untouched.seen.contains("session-ended"));
    assert!(
        !on_laptop.wait_for(ticket, Duration::from_secs(1)).await,
        "a revoked nurse still heard the red flag: {}",
        on_laptop.seen
    );
}

#[tokio::test]
async fn a_stream_ends_when_its_session_expires_by_the_clock() {
    let app = App::spawn().await;
    let guide = app.login("guide.north1").await;
    let mut stream = app.events(&guide).await;
    // Past the 12-hour session lifetime, with no event passing by.
    app.clock.advance(SignedDuration::from_hours(13));
    assert_ended(&mut stream, "expired").await;
}

#[tokio::test]
async fn a_stream_lasts_past_the_idle_timeout_only_while_its_user_is_active() {
    let app = App::spawn().await;
    let guide = app.login("guide.north1").await;
    let mut stream = app.events(&guide).await;

    // Twenty minutes in the user does something; forty minutes in, the
    // stream still serves (twenty minutes since the last use).
    app.clock.advance(SignedDuration::from_mins(20));
    assert_eq!(app.get("/api/v1/me", &guide).await.status, 200);
    app.clock.advance(SignedDuration::from_mins(20));
    let member = app.login("member01").await;
    let out = app.send(&member, ROUTINE).await;
    let ticket = out["ticket"]["id"].as_str().unwrap();
    assert!(stream.wait_for(ticket, WAIT).await, "{}", stream.seen);
    assert!(!stream.seen.contains("session-ended"));

    // An open stream alone is not use: past the idle timeout it ends.
    app.clock.advance(SignedDuration::from_mins(11));
    assert_ended(&mut stream, "idle").await;
}

#[tokio::test]
async fn a_care_guide_taken_off_a_team_no_longer_hears_its_red_flags() {
    let app = App::spawn().await;
    let guide = app.login("guide.north1").await;
    let guide_id = me(&app, &guide, "id").await;
    let mut stream = app.events(&guide).await;

    // While on North, the guide hears North's members.
    let member02 = app.login("member02").await;
    let before = app.send(&member02, ROUTINE).await;
    let before = before["ticket"]["id"].as_str().unwrap();
    assert!(stream.wait_for(before, WAIT).await, "{}", stream.seen);

    let admin = app.login("admin").await;
    let teams = app.get("/api/v1/admin/teams", &admin).await.json();
    let north = teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "North")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/admin/teams/{north}/members/{guide_id}");
    let r = app.call("DELETE", &path, Some(&admin), None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_problem(
        &app.call("DELETE", &path, Some(&admin), None).await,
        404,
        "not-found",
    );
    assert_eq!(app.recorded("user.team_left").await.len(), 1);

    let member01 = app.login("member01").await;
    let red = app.send(&member01, EMERGENCY).await;
    let red = red["ticket"]["id"].as_str().unwrap().to_owned();

    // Something the guide may still hear, committed after the red flag: a
    // South nurse tags them into a South member's thread.
    let member11 = app.login("member11").await;
    let south = app.send(&member11, ROUTINE).await;
    let thread = south["message"]["thread_id"].as_str().unwrap();
    let nurse_south = app.login("nurse.south").await;
    let r = app
        .post(
            &format!("/api/v1/threads/{thread}/collaborators"),
            &nurse_south,
            json!({"user_id": guide_id, "reason": "help with the pharmacy call"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        stream
            .wait_for("event: thread.collaborator_added", WAIT)
            .await,
        "{}",
        stream.seen
    );
    assert!(
        !stream.seen.contains(&red),
        "a guide taken off North still heard North's red flag: {}",
        stream.seen
    );
    assert!(!stream.seen.contains("session-ended"));
}

#[tokio::test]
async fn break_glass_access_to_a_members_events_ends_when_it_expires() {
    let app = App::spawn().await;
    let nurse = app.login("nurse.south").await;
    let mut stream = app.events(&nurse).await;
    let member01 = app.login("member01").await;
    let member_id = me(&app, &member01, "member_id").await;
    let r = app
        .post(
            &format!("/api/v1/members/{member_id}/break-glass"),
            &nurse,
            json!({"reason": "member collapsed at the South clinic, need allergies now"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let until: jiff::Timestamp = r.json()["expires_at"].as_str().unwrap().parse().unwrap();

    // While the glass is broken the nurse hears the member's messages.
    let first = app.send(&member01, ROUTINE).await;
    let first = first["message"]["id"].as_str().unwrap();
    assert!(stream.wait_for(first, WAIT).await, "{}", stream.seen);

    // Time passes past the grant; the nurse keeps working, so the session lives.
    while app.clock.now_ts() <= until {
        app.clock.advance(SignedDuration::from_mins(20));
        assert_eq!(app.get("/api/v1/me", &nurse).await.status, 200);
    }
    let member01 = app.login("member01").await;
    let second = app.send(&member01, "and my inhaler too please").await;
    let second = second["message"]["id"].as_str().unwrap().to_owned();
    // The nurse's own team's member, after: proof the stream still delivers.
    let member11 = app.login("member11").await;
    let south = app.send(&member11, ROUTINE).await;
    let south = south["message"]["id"].as_str().unwrap();
    assert!(stream.wait_for(south, WAIT).await, "{}", stream.seen);
    assert!(
        !stream.seen.contains(&second),
        "the member's message reached a nurse whose break-glass had expired: {}",
        stream.seen
    );
    assert!(!stream.seen.contains("session-ended"));
}
