//! Setting an organization up: the organization itself, its care teams
//! (each with a team queue and a clinical queue), its users and members.
//! What each step checks and the event it records; the stores write the
//! rows. Callers check that an administrator (or the setup command) asks.

use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{CareTeam, Member, Organization, QueueKind, Role, User};
use crate::validate::{Username, display_name};
use crate::{Error, Result};
use jiff::Timestamp;
use serde_json::json;

/// A new organization named `name`.
pub fn new_org(name: &str, now: Timestamp) -> Result<(Organization, NewEvent)> {
    let name = display_name(name, "organization name")?;
    let o = Organization {
        id: OrgId::new(),
        name,
        created_at: now,
    };
    let ev = NewEvent::new(EventKind::OrganizationCreated, json!({"name": o.name}));
    Ok((o, ev))
}

/// A new care team of `org` named `name`, with its two queues (see [`team_queues`]).
pub fn new_team(org: OrgId, name: &str, actor: Option<UserId>) -> Result<(CareTeam, NewEvent)> {
    let name = display_name(name, "team name")?;
    let t = CareTeam {
        id: TeamId::new(),
        org_id: org,
        name,
        team_queue: QueueId::new(),
        clinical_queue: QueueId::new(),
    };
    let ev = NewEvent::new(
        EventKind::TeamCreated,
        json!({"name": t.name, "team_queue": t.team_queue, "clinical_queue": t.clinical_queue}),
    )
    .actor(actor)
    .team(t.id);
    Ok((t, ev))
}

/// A team's two queues: id, kind and name.
pub fn team_queues(t: &CareTeam) -> [(QueueId, QueueKind, String); 2] {
    [
        (t.team_queue, QueueKind::Team, format!("{} team", t.name)),
        (
            t.clinical_queue,
            QueueKind::Clinical,
            format!("{} clinical", t.name),
        ),
    ]
}

/// Whether `user` may join care team `team`, both of `org`: staff only.
pub fn check_team_join(org: OrgId, team: &CareTeam, user: &User) -> Result<()> {
    if team.org_id != org || user.org_id != org {
        return Err(Error::NotFound("team"));
    }
    if !user.role.is_staff() {
        return Err(Error::invalid("only staff join care teams"));
    }
    Ok(())
}

/// The event recording that `user` joined `team`.
pub fn team_joined(team: TeamId, user: UserId, actor: Option<UserId>) -> NewEvent {
    NewEvent::new(EventKind::UserTeamJoined, json!({"user_id": user}))
        .actor(actor)
        .team(team)
}

/// The event recording that `user` was taken off `team`.
pub fn team_left(team: TeamId, user: UserId, actor: Option<UserId>) -> NewEvent {
    NewEvent::new(EventKind::UserTeamLeft, json!({"user_id": user}))
        .actor(actor)
        .team(team)
}

/// A new login account of `org`: an e-mail style username (lower-cased), a
/// display name, and, for a member's own login, the member it is.
pub fn new_user(
    org: OrgId,
    username: &str,
    name: &str,
    role: Role,
    member_id: Option<MemberId>,
) -> Result<User> {
    let username = Username::parse(username)?;
    let name = display_name(name, "name")?;
    if role == Role::Member && member_id.is_none() {
        return Err(Error::invalid("a member login must name its member"));
    }
    Ok(User {
        id: UserId::new(),
        org_id: org,
        username: username.as_str().to_owned(),
        name,
        role,
        member_id,
        disabled: false,
    })
}

/// The event recording that `user` was created.
pub fn user_created(user: &User, actor: Option<UserId>) -> NewEvent {
    let mut ev = NewEvent::new(
        EventKind::UserCreated,
        json!({"user_id": user.id, "username": user.username, "role": user.role}),
    )
    .actor(actor);
    if let Some(m) = user.member_id {
        ev = ev.member(m);
    }
    ev
}

/// The event recording that `member` was created, with the organization's
/// own reference for them.
pub fn member_created(
    member: &Member,
    external_ref: Option<&str>,
    actor: Option<UserId>,
) -> NewEvent {
    NewEvent::new(
        EventKind::MemberCreated,
        json!({"external_ref": external_ref}),
    )
    .actor(actor)
    .member(member.id)
    .team(member.team_id)
}
