//! Escalation: a red flag pages a clinician with an acknowledgement deadline,
//! and an unacknowledged page climbs a chain — primary clinician, backup
//! clinician, physician, every supervisor, then an organization-wide alarm —
//! each step an event. Pages are plain data with deadlines, so the store
//! keeps them durable and a restarted process resumes every clock.

use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{Role, Ticket, User};
use crate::ticket::Actor;
use crate::{Error, Result};
use careline_triage::Disposition;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::str::FromStr;

/// Who a team pages, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rota {
    pub primary: Option<UserId>,
    pub backup: Option<UserId>,
    pub physician: Option<UserId>,
    #[serde(default)]
    pub supervisors: Vec<UserId>,
    /// Why part of the stored rota could not be read, if it could not: a
    /// page for the team then alarms the whole organization at once rather
    /// than skip the unreadable rung in silence.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// The rungs of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageLevel {
    Primary,
    Backup,
    Physician,
    Supervisors,
    /// The chain ran out: every supervisor and clinician of the organization is alarmed.
    OrgAlarm,
}

impl PageLevel {
    pub const ALL: [PageLevel; 5] = [
        PageLevel::Primary,
        PageLevel::Backup,
        PageLevel::Physician,
        PageLevel::Supervisors,
        PageLevel::OrgAlarm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PageLevel::Primary => "primary",
            PageLevel::Backup => "backup",
            PageLevel::Physician => "physician",
            PageLevel::Supervisors => "supervisors",
            PageLevel::OrgAlarm => "org_alarm",
        }
    }

    fn next(self) -> Option<PageLevel> {
        match self {
            PageLevel::Primary => Some(PageLevel::Backup),
            PageLevel::Backup => Some(PageLevel::Physician),
            PageLevel::Physician => Some(PageLevel::Supervisors),
            PageLevel::Supervisors => Some(PageLevel::OrgAlarm),
            PageLevel::OrgAlarm => None,
        }
    }
}

impl FromStr for PageLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PageLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown page level '{s}'")))
    }
}

impl Rota {
    /// Who is paged at `level`. An empty list at a rung below the alarm means "skip it".
    pub fn targets(&self, level: PageLevel) -> Vec<UserId> {
        match level {
            PageLevel::Primary => self.primary.into_iter().collect(),
            PageLevel::Backup => self.backup.into_iter().collect(),
            PageLevel::Physician => self.physician.into_iter().collect(),
            PageLevel::Supervisors => self.supervisors.clone(),
            PageLevel::OrgAlarm => Vec::new(),
        }
    }

    /// Everyone the rota names, each with the place that sets the rule they
    /// must meet, in the order they are checked.
    pub fn named(&self) -> Vec<(UserId, RotaPlace)> {
        let mut out: Vec<(UserId, RotaPlace)> = [
            (self.primary, RotaPlace::Primary),
            (self.backup, RotaPlace::Backup),
            (self.physician, RotaPlace::Physician),
        ]
        .into_iter()
        .filter_map(|(u, place)| u.map(|u| (u, place)))
        .collect();
        out.extend(self.supervisors.iter().map(|s| (*s, RotaPlace::Supervisor)));
        out
    }

    /// The event recording that `by` set this rota for `team`.
    pub fn set_event(&self, by: UserId, team: TeamId) -> NewEvent {
        NewEvent::new(EventKind::RotaSet, json!(self))
            .actor(Some(by))
            .team(team)
    }
}

/// A place on the rota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotaPlace {
    Primary,
    Backup,
    Physician,
    Supervisor,
}

impl RotaPlace {
    fn as_str(self) -> &'static str {
        match self {
            RotaPlace::Primary => "primary",
            RotaPlace::Backup => "backup",
            RotaPlace::Physician => "physician",
            RotaPlace::Supervisor => "supervisors",
        }
    }

    /// Whether `user` (looked up by the id the rota names) may take this
    /// place: a staff user of `org`; a nurse or physician for the clinical
    /// places, a supervisor (or a clinician) for the supervisors' rung.
    pub fn check(self, org: OrgId, user: Option<&User>) -> Result<()> {
        let what = self.as_str();
        let user = user.filter(|u| u.org_id == org).ok_or_else(|| {
            Error::invalid(format!("{what}: no such staff user in this organization"))
        })?;
        let clinical = self != RotaPlace::Supervisor;
        if clinical && !user.role.is_clinical() {
            return Err(Error::invalid(format!(
                "{what}: {} is a {}, not a nurse or physician",
                user.name, user.role
            )));
        }
        if !clinical && !matches!(user.role, Role::Supervisor | Role::Physician | Role::Nurse) {
            return Err(Error::invalid(format!(
                "{what}: {} is a {}, not a supervisor",
                user.name, user.role
            )));
        }
        Ok(())
    }
}

/// How long a paged clinician has to acknowledge, per disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckPolicy {
    pub emergency_minutes: i64,
    pub urgent_minutes: i64,
}

impl Default for AckPolicy {
    fn default() -> Self {
        AckPolicy {
            emergency_minutes: 2,
            urgent_minutes: 15,
        }
    }
}

impl AckPolicy {
    pub fn window(&self, d: Disposition) -> SignedDuration {
        match d {
            Disposition::Emergency => SignedDuration::from_mins(self.emergency_minutes),
            _ => SignedDuration::from_mins(self.urgent_minutes),
        }
    }
}

/// A page's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStatus {
    /// Waiting for an acknowledgement; its deadline is running.
    Open,
    Acknowledged,
    /// The deadline passed and the next rung was paged.
    Escalated,
    /// A newer, stronger page or a clinical clearance made it moot.
    Superseded,
}

impl PageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PageStatus::Open => "open",
            PageStatus::Acknowledged => "acknowledged",
            PageStatus::Escalated => "escalated",
            PageStatus::Superseded => "superseded",
        }
    }
}

impl FromStr for PageStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            PageStatus::Open,
            PageStatus::Acknowledged,
            PageStatus::Escalated,
            PageStatus::Superseded,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
        .ok_or_else(|| Error::invalid(format!("unknown page status '{s}'")))
    }
}

/// A page to one rung of the chain about one red-flag ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub id: PageId,
    pub org_id: OrgId,
    pub ticket_id: TicketId,
    pub member_id: MemberId,
    pub team_id: TeamId,
    pub level: PageLevel,
    /// Who must acknowledge; empty for the organization-wide alarm (any clinician or supervisor may).
    pub targets: Vec<UserId>,
    pub disposition: Disposition,
    /// What fired, for the person paged.
    pub reason: String,
    /// When the red flag was committed: the start of every time-to-clinician figure.
    pub flagged_at: Timestamp,
    pub created_at: Timestamp,
    /// `None` for the alarm, which stays open until someone takes it.
    pub deadline: Option<Timestamp>,
    pub status: PageStatus,
    pub acked_by: Option<UserId>,
    pub acked_at: Option<Timestamp>,
}

fn page_event(
    p: &Page,
    kind: EventKind,
    actor: Option<UserId>,
    extra: serde_json::Value,
) -> NewEvent {
    let mut payload = json!({
        "page_id": p.id,
        "level": p.level,
        "targets": p.targets,
        "disposition": p.disposition,
        "deadline": p.deadline,
        "reason": p.reason,
    });
    if let (Some(o), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    NewEvent::new(kind, payload)
        .actor(actor)
        .member(p.member_id)
        .ticket(p.ticket_id)
        .team(p.team_id)
}

/// Page the first rung at or above `from` that has someone on it.
pub fn open_page(
    ticket: &Ticket,
    rota: &Rota,
    policy: &AckPolicy,
    from: PageLevel,
    flagged_at: Timestamp,
    now: Timestamp,
) -> (Page, Vec<NewEvent>) {
    let mut level = from;
    let mut targets = rota.targets(level);
    while targets.is_empty() && level != PageLevel::OrgAlarm {
        level = level.next().unwrap_or(PageLevel::OrgAlarm);
        targets = rota.targets(level);
    }
    let deadline = (level != PageLevel::OrgAlarm).then(|| {
        now.checked_add(policy.window(ticket.priority))
            .unwrap_or(Timestamp::MAX)
    });
    let page = Page {
        id: PageId::new(),
        org_id: ticket.org_id,
        ticket_id: ticket.id,
        member_id: ticket.member_id,
        team_id: ticket.team_id,
        level,
        targets,
        disposition: ticket.priority,
        reason: ticket.flag_names(),
        flagged_at,
        created_at: now,
        deadline,
        status: PageStatus::Open,
        acked_by: None,
        acked_at: None,
    };
    let kind = if level == PageLevel::OrgAlarm {
        EventKind::EscalationAlarm
    } else {
        EventKind::PageCreated
    };
    let mut events = vec![page_event(&page, kind, None, json!({}))];
    if let Some(why) = &rota.unreadable {
        // The chain itself is damaged: every supervisor hears of this red
        // flag now, whatever rung was paged.
        let extra = json!({"rota_unreadable": why});
        match events.first_mut() {
            Some(ev) if level == PageLevel::OrgAlarm => {
                if let Some(p) = ev.payload.as_object_mut() {
                    p.insert("rota_unreadable".into(), json!(why));
                }
            }
            _ => events.push(page_event(&page, EventKind::EscalationAlarm, None, extra)),
        }
    }
    (page, events)
}

/// Page the first rung again for a ticket's (new or stronger) red flag:
/// the ticket's open pages (`open`) are superseded first. Returns the
/// superseded pages, the new page, and the events, all to be written.
pub fn page_again(
    ticket: &Ticket,
    mut open: Vec<Page>,
    rota: &Rota,
    policy: &AckPolicy,
    flagged_at: Timestamp,
    now: Timestamp,
) -> (Vec<Page>, Page, Vec<NewEvent>) {
    let mut events = supersede_all(&mut open, "a newer red flag paged again");
    let (page, ev) = open_page(ticket, rota, policy, PageLevel::Primary, flagged_at, now);
    events.extend(ev);
    (open, page, events)
}

/// Supersede every page of `pages` still open, for the reason `why`.
pub fn supersede_all(pages: &mut [Page], why: &str) -> Vec<NewEvent> {
    pages.iter_mut().flat_map(|pg| pg.supersede(why)).collect()
}

impl Page {
    /// The deadline passed unacknowledged: mark this page escalated and page the next rung.
    pub fn escalate(
        &mut self,
        ticket: &Ticket,
        rota: &Rota,
        policy: &AckPolicy,
        now: Timestamp,
    ) -> Result<(Page, Vec<NewEvent>)> {
        if self.status != PageStatus::Open {
            return Err(Error::conflict(
                "page-not-open",
                format!("page is {}", self.status.as_str()),
            ));
        }
        let next = self.level.next().ok_or_else(|| {
            Error::conflict(
                "chain-exhausted",
                "the organization-wide alarm is the last rung",
            )
        })?;
        self.status = PageStatus::Escalated;
        let mut events = vec![page_event(
            self,
            EventKind::PageEscalated,
            None,
            json!({"to_level": next, "missed_deadline": self.deadline}),
        )];
        let (page, ev) = open_page(ticket, rota, policy, next, self.flagged_at, now);
        events.extend(ev);
        Ok((page, events))
    }

    /// Whether `actor` may acknowledge this page.
    pub fn may_ack(&self, actor: &Actor) -> bool {
        if self.level == PageLevel::OrgAlarm {
            actor.role.is_clinical() || actor.role == Role::Supervisor
        } else {
            self.targets.contains(&actor.user_id)
        }
    }

    /// The paged person takes it.
    pub fn acknowledge(&mut self, actor: &Actor, now: Timestamp) -> Result<Vec<NewEvent>> {
        if !self.may_ack(actor) {
            return Err(Error::forbidden(
                "not-paged",
                "only the person paged (or, for an alarm, a clinician or supervisor) can acknowledge this page",
            ));
        }
        match self.status {
            PageStatus::Open => {}
            PageStatus::Acknowledged => {
                return Err(Error::conflict(
                    "page-acknowledged",
                    "this page was already acknowledged",
                ));
            }
            s => {
                return Err(Error::conflict(
                    "page-not-open",
                    format!("this page is {}; acknowledge the newest page", s.as_str()),
                ));
            }
        }
        self.status = PageStatus::Acknowledged;
        self.acked_by = Some(actor.user_id);
        self.acked_at = Some(now);
        let to_ack_ms = (now.as_microsecond() - self.flagged_at.as_microsecond()) / 1000;
        Ok(vec![page_event(
            self,
            EventKind::PageAcknowledged,
            Some(actor.user_id),
            json!({"since_flag_ms": to_ack_ms}),
        )])
    }

    /// A newer page or a clearance replaced this one.
    pub fn supersede(&mut self, why: &str) -> Vec<NewEvent> {
        if self.status != PageStatus::Open {
            return Vec::new();
        }
        self.status = PageStatus::Superseded;
        vec![page_event(
            self,
            EventKind::PageSuperseded,
            None,
            json!({"why": why}),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CareTeam, QueueKind};
    use crate::sla::SlaPolicies;
    use careline_triage::Judgement;

    fn ticket(d: Disposition) -> Ticket {
        let team = CareTeam {
            id: TeamId::new(),
            org_id: OrgId::new(),
            name: "N".into(),
            team_queue: QueueId::new(),
            clinical_queue: QueueId::new(),
        };
        let j = Judgement {
            disposition: d,
            protocols: vec![],
            evidence: vec![],
            suppressed: vec![],
            protocol_version: "t".into(),
            protocol_hash: "h".into(),
            explanation: String::new(),
            guidance: None,
            second_reader: None,
            clinical_content: None,
        };
        let thread = crate::model::Thread {
            id: ThreadId::new(),
            org_id: team.org_id,
            member_id: MemberId::new(),
            created_at: now(),
        };
        let (t, _) =
            Ticket::open_for_contact(&thread, &team, &j, &SlaPolicies::default(), None, now());
        assert_eq!(t.queue_kind, QueueKind::for_priority(d));
        t
    }

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn rota() -> Rota {
        Rota {
            primary: Some(UserId::new()),
            backup: Some(UserId::new()),
            physician: Some(UserId::new()),
            supervisors: vec![UserId::new(), UserId::new()],
            unreadable: None,
        }
    }

    #[test]
    fn an_unreadable_rota_alarms_the_organization_at_once_instead_of_skipping_a_rung() {
        let mut r = rota();
        r.supervisors.clear();
        r.unreadable = Some("stored rota supervisors is corrupt: expected value".into());
        let (p, ev) = open_page(
            &ticket(Disposition::Emergency),
            &r,
            &AckPolicy::default(),
            PageLevel::Primary,
            now(),
            now(),
        );
        assert_eq!(
            p.level,
            PageLevel::Primary,
            "whoever can be read is still paged"
        );
        let kinds: Vec<_> = ev.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::PageCreated, EventKind::EscalationAlarm]);
        assert!(
            ev[1].payload["rota_unreadable"]
                .as_str()
                .unwrap()
                .contains("corrupt")
        );
    }

    #[test]
    fn emergency_page_has_two_minute_deadline_urgent_fifteen() {
        let (p, ev) = open_page(
            &ticket(Disposition::Emergency),
            &rota(),
            &AckPolicy::default(),
            PageLevel::Primary,
            now(),
            now(),
        );
        assert_eq!(p.deadline, Some(now() + SignedDuration::from_mins(2)));
        assert_eq!(ev[0].kind, EventKind::PageCreated);
        let (p, _) = open_page(
            &ticket(Disposition::Urgent),
            &rota(),
            &AckPolicy::default(),
            PageLevel::Primary,
            now(),
            now(),
        );
        assert_eq!(p.deadline, Some(now() + SignedDuration::from_mins(15)));
    }

    #[test]
    fn chain_climbs_to_org_alarm_and_skips_empty_rungs() {
        let t = ticket(Disposition::Emergency);
        let mut r = rota();
        r.backup = None;
        let policy = AckPolicy::default();
        let (mut p, _) = open_page(&t, &r, &policy, PageLevel::Primary, now(), now());
        let mut levels = vec![p.level];
        while p.level != PageLevel::OrgAlarm {
            let (next, ev) = p.escalate(&t, &r, &policy, now()).unwrap();
            assert_eq!(p.status, PageStatus::Escalated);
            assert!(ev.iter().any(|e| e.kind == EventKind::PageEscalated));
            p = next;
            levels.push(p.level);
        }
        assert_eq!(
            levels,
            [
                PageLevel::Primary,
                PageLevel::Physician,
                PageLevel::Supervisors,
                PageLevel::OrgAlarm
            ]
        );
        assert_eq!(p.deadline, None);
        assert!(
            p.escalate(&t, &r, &policy, now()).is_err(),
            "the alarm is the last rung"
        );
    }

    #[test]
    fn only_the_paged_person_acknowledges_and_only_once() {
        let r = rota();
        let (mut p, _) = open_page(
            &ticket(Disposition::Urgent),
            &r,
            &AckPolicy::default(),
            PageLevel::Primary,
            now(),
            now(),
        );
        let stranger = Actor {
            user_id: UserId::new(),
            role: Role::Nurse,
            name: "x".into(),
        };
        assert!(matches!(
            p.acknowledge(&stranger, now()),
            Err(Error::Forbidden { .. })
        ));
        let primary = Actor {
            user_id: r.primary.unwrap(),
            role: Role::Nurse,
            name: "p".into(),
        };
        p.acknowledge(&primary, now()).unwrap();
        assert_eq!(p.status, PageStatus::Acknowledged);
        assert!(matches!(
            p.acknowledge(&primary, now()),
            Err(Error::Conflict { .. })
        ));
    }
}
