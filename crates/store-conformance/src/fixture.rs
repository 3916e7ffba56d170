//! Fixtures built through the trait only: organizations with two care teams,
//! staff of every role, members, logins through real sessions, contacts
//! judged by the real triage engine, and assertions on errors by rule.

use careline_core::authz::Principal;
use careline_core::escalation::Rota;
use careline_core::event::Event;
use careline_core::ids::*;
use careline_core::ingest::{ContactIn, ContactKind};
use careline_core::model::*;
use careline_core::validate::MessageText;
use careline_core::{Disposition, Error, Judgement, Result};
use careline_store::{ContactOutcome, ContactRequest, NewMember, NewSession, NewUser, Store};
use careline_triage::{Context, Engine};
use jiff::{SignedDuration, Timestamp};
use std::sync::{Arc, OnceLock};

/// The instant every case starts at.
pub const T0: &str = "2030-03-04T09:00:00Z";

/// A precomputed argon2id PHC string (of a password nobody needs): stores
/// keep it opaque, and hashing one per fixture user would be slow.
pub const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Y29uZm9ybWFuY2Utc2FsdA$g/wy8dokA8+AcgoAWgzMIqOlzzWQAQjpR+/yLGVqv+M";

pub const ROUTINE: &str = "Hi, could you send a refill of my lisinopril to the pharmacy? Thanks!";
pub const URGENT: &str = "My blood pressure is 188/108 this morning, I feel fine otherwise";
pub const EMERGENCY: &str =
    "I have crushing chest pain going down my left arm and I'm sweating a lot";

/// `T0` plus `mins` minutes.
pub fn at(mins: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(mins)
}

pub fn t0() -> Timestamp {
    T0.parse().expect("T0 parses")
}

/// The real triage engine, compiled once per process.
pub fn judge(text: &str) -> Judgement {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::embedded().expect("embedded protocols compile"))
        .judge(text, &Context::default())
}

/// One organization: teams North and South, staff of every role, two
/// members on North (South's staff are the outsiders within the tenant).
pub struct Org {
    pub store: Arc<dyn Store>,
    pub org: Organization,
    pub north: CareTeam,
    pub admin: User,
    pub guide: User,
    pub guide_south: User,
    pub nurse: User,
    pub nurse2: User,
    pub nurse_south: User,
    pub physician: User,
    pub supervisor: User,
    pub agent: User,
    pub privacy: User,
    pub safety: User,
    /// On the North team.
    pub member: Member,
    pub member_user: User,
    /// On the North team too.
    pub member2: Member,
    pub member2_user: User,
}

impl Org {
    /// A new organization named `name` (names are unique per store).
    pub async fn new(store: &Arc<dyn Store>, name: &str) -> Org {
        let now = t0();
        let org = store.create_org(name, now).await.expect("create_org");
        let north = store
            .create_team(org.id, "North", None, now)
            .await
            .expect("create_team North");
        let south = store
            .create_team(org.id, "South", None, now)
            .await
            .expect("create_team South");
        let slug = name.to_lowercase().replace(' ', "-");
        let staff = |login: &'static str, role: Role, teams: Vec<TeamId>| {
            let store = store.clone();
            let slug = slug.clone();
            async move {
                let u = store
                    .create_user(
                        NewUser {
                            org_id: org.id,
                            username: format!("{login}@{slug}.example"),
                            name: format!("{login} of {slug}"),
                            role,
                            member_id: None,
                            password_hash: PASSWORD_HASH.into(),
                        },
                        None,
                        now,
                    )
                    .await
                    .expect("create_user");
                for t in teams {
                    store
                        .add_to_team(org.id, t, u.id, None, now)
                        .await
                        .expect("add_to_team");
                }
                u
            }
        };
        let (n, s) = (north.id, south.id);
        let admin = staff("admin", Role::Admin, vec![]).await;
        let guide = staff("guide", Role::CareGuide, vec![n]).await;
        let guide_south = staff("guide.south", Role::CareGuide, vec![s]).await;
        let nurse = staff("nurse", Role::Nurse, vec![n]).await;
        let nurse2 = staff("nurse2", Role::Nurse, vec![n]).await;
        let nurse_south = staff("nurse.south", Role::Nurse, vec![s]).await;
        let physician = staff("doctor", Role::Physician, vec![n, s]).await;
        let supervisor = staff("supervisor", Role::Supervisor, vec![n, s]).await;
        let agent = staff("agent", Role::Agent, vec![n, s]).await;
        let privacy = staff("privacy", Role::PrivacyOfficer, vec![]).await;
        let safety = staff("safety", Role::SafetyReviewer, vec![]).await;
        let member = new_member(store, org.id, n, "Margaret Ellis", "en").await;
        let member_user = member_login(store, &member, &format!("margaret@{slug}.example")).await;
        let member2 = new_member(store, org.id, n, "Lucía Romero", "es").await;
        let member2_user = member_login(store, &member2, &format!("lucia@{slug}.example")).await;
        Org {
            store: store.clone(),
            org,
            north,
            admin,
            guide,
            guide_south,
            nurse,
            nurse2,
            nurse_south,
            physician,
            supervisor,
            agent,
            privacy,
            safety,
            member,
            member_user,
            member2,
            member2_user,
        }
    }

    /// A principal for `user`, loaded from a new session at `now`.
    pub async fn login(&self, user: &User, now: Timestamp) -> Principal {
        login(&self.store, user, now).await
    }

    /// North's rota: nurse, then nurse2, then the physician, then the supervisor.
    pub async fn north_rota(&self) {
        let admin = self.login(&self.admin, t0()).await;
        self.store
            .set_rota(
                &admin,
                self.north.id,
                Rota {
                    primary: Some(self.nurse.id),
                    backup: Some(self.nurse2.id),
                    physician: Some(self.physician.id),
                    supervisors: vec![self.supervisor.id],
                    unreadable: None,
                },
                t0(),
            )
            .await
            .expect("set_rota");
    }

    /// `text` from the member behind `p` (a member or proxy), judged.
    pub async fn send(
        &self,
        p: &Principal,
        member: MemberId,
        text: &str,
        now: Timestamp,
    ) -> ContactOutcome {
        self.store
            .record_contact(message(p, member, text, vec![]), now)
            .await
            .expect("record_contact")
    }

    /// Every event of this organization, in order.
    pub async fn events(&self) -> Vec<Event> {
        all_events(&self.store, self.org.id).await
    }
}

pub async fn new_member(
    store: &Arc<dyn Store>,
    org: OrgId,
    team: TeamId,
    name: &str,
    language: &str,
) -> Member {
    store
        .create_member(
            NewMember {
                org_id: org,
                name: name.into(),
                date_of_birth: None,
                sex: None,
                language: language.into(),
                phone: None,
                email: None,
                plan: None,
                team_id: team,
                markers: HealthMarkers::default(),
                external_ref: None,
            },
            None,
            t0(),
        )
        .await
        .expect("create_member")
}

pub async fn member_login(store: &Arc<dyn Store>, m: &Member, username: &str) -> User {
    store
        .create_user(
            NewUser {
                org_id: m.org_id,
                username: username.into(),
                name: m.name.clone(),
                role: Role::Member,
                member_id: Some(m.id),
                password_hash: PASSWORD_HASH.into(),
            },
            None,
            t0(),
        )
        .await
        .expect("create_user (member)")
}

pub async fn user(store: &Arc<dyn Store>, org: OrgId, username: &str, role: Role) -> User {
    store
        .create_user(
            NewUser {
                org_id: org,
                username: username.into(),
                name: username.split('@').next().unwrap_or(username).into(),
                role,
                member_id: None,
                password_hash: PASSWORD_HASH.into(),
            },
            None,
            t0(),
        )
        .await
        .expect("create_user")
}

/// A fresh session token hash (stores keep only hashes; any unique string does).
pub fn token() -> String {
    format!("conformance-{}", uuid::Uuid::now_v7().simple())
}

pub async fn login(store: &Arc<dyn Store>, user: &User, now: Timestamp) -> Principal {
    let token = token();
    store
        .create_session(
            NewSession {
                mfa_pending: false,
                token_hash: token.clone(),
                user_id: user.id,
                org_id: user.org_id,
                expires_at: now + SignedDuration::from_hours(12),
            },
            now,
        )
        .await
        .expect("create_session");
    store
        .principal(&token, now, SignedDuration::from_hours(1))
        .await
        .expect("principal")
        .expect("a new session is live")
}

/// A portal message from `p` about `member`.
pub fn message(
    p: &Principal,
    member: MemberId,
    text: &str,
    attachments: Vec<AttachmentId>,
) -> ContactRequest {
    contact(p, member, ContactKind::Message, text, attachments)
}

pub fn contact(
    p: &Principal,
    member: MemberId,
    kind: ContactKind,
    text: &str,
    attachments: Vec<AttachmentId>,
) -> ContactRequest {
    ContactRequest {
        principal: p.clone(),
        member_id: member,
        contact: ContactIn {
            kind,
            author_id: p.user_id,
            author_name: p.name.clone(),
            text: MessageText::parse(text).expect("valid text"),
            judgement: judge(text),
        },
        attachments,
    }
}

pub async fn all_events(store: &Arc<dyn Store>, org: OrgId) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.seq);
        let page = store.events(org, after, 1000).await.expect("events");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

pub fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

pub fn count(events: &[Event], kind: &str) -> usize {
    events.iter().filter(|e| e.kind == kind).count()
}

pub fn payload(e: &Event) -> serde_json::Value {
    serde_json::from_str(&e.payload).expect("event payload is JSON")
}

/// Events after `seq`.
pub fn since(events: &[Event], seq: i64) -> Vec<Event> {
    events.iter().filter(|e| e.seq > seq).cloned().collect()
}

pub fn last_seq(events: &[Event]) -> i64 {
    events.last().map_or(0, |e| e.seq)
}

/// The disposition the engine gives `text` (checks the fixture texts).
pub fn disposition(text: &str) -> Disposition {
    judge(text).disposition
}

#[track_caller]
pub fn forbidden<T: std::fmt::Debug>(r: Result<T>, want: &str) {
    match r {
        Err(Error::Forbidden { rule, .. }) if rule == want => {}
        other => panic!("expected Forbidden with rule `{want}`, got {other:?}"),
    }
}

#[track_caller]
pub fn conflict<T: std::fmt::Debug>(r: Result<T>, want: &str) {
    match r {
        Err(Error::Conflict { rule, .. }) if rule == want => {}
        other => panic!("expected Conflict with rule `{want}`, got {other:?}"),
    }
}

#[track_caller]
pub fn not_found<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(Error::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn invalid<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(Error::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Not found, or forbidden: what a caller outside a tenant may see.
#[track_caller]
pub fn hidden<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(Error::NotFound(_)) => {}
        other => panic!(
            "expected NotFound (another organization's data must look absent), got {other:?}"
        ),
    }
}

/// Asserts the chain of one organization: seq 1..n without gaps, each event
/// pointing at its predecessor's hash, and `verify_chains` reporting it intact.
pub async fn assert_chain(store: &Arc<dyn Store>, org: OrgId) -> Vec<Event> {
    let events = all_events(store, org).await;
    let mut prev = careline_core::event::GENESIS_HASH.to_owned();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.org_id, org,
            "event {} belongs to another organization",
            e.seq
        );
        assert_eq!(
            e.seq,
            i as i64 + 1,
            "sequence gap or duplicate before {}",
            e.seq
        );
        assert_eq!(
            e.prev_hash, prev,
            "event {} does not point at its predecessor",
            e.seq
        );
        assert_eq!(
            e.hash,
            e.compute_hash(),
            "event {} hash does not match its content",
            e.seq
        );
        prev.clone_from(&e.hash);
    }
    let reports = store.verify_chains().await.expect("verify_chains");
    let r = reports
        .iter()
        .find(|r| r.org_id == org)
        .expect("verify_chains reports the organization");
    assert_eq!(r.error, None, "chain of {} is broken", r.org_name);
    assert_eq!(
        r.events,
        events.len() as i64,
        "verify_chains counted a different number of events"
    );
    assert_eq!(
        r.last_hash, prev,
        "verify_chains reports another head than the last event's hash"
    );
    events
}
