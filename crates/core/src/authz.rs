//! Who may reach what. Default deny: every function here answers with the
//! grant that allowed access (so it can be recorded) or an error naming the
//! rule that refused it. Other organizations' data is indistinguishable from
//! data that does not exist.

use crate::escalation::Page;
use crate::ids::*;
use crate::model::{CareTeam, Member, Message, Role, Ticket};
use crate::ticket::Actor;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// An authenticated caller and the relationships that grant access.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub role: Role,
    pub name: String,
    /// A member's own record.
    pub member_id: Option<MemberId>,
    /// Members this proxy may act for, each with the scope the member or an
    /// administrator granted (expired grants already left out).
    pub proxy_for: Vec<(MemberId, ProxyScope)>,
    /// Care teams this staff user belongs to.
    pub team_ids: Vec<TeamId>,
    /// Access to members outside the care team, each with the relationship
    /// that grants it (tagged in, paged, break-glass); expired ones are
    /// already left out by whoever loaded the principal.
    pub grants: Vec<(MemberId, Grant)>,
    /// A session that must enrol a second factor before it may do anything
    /// else (the organization requires MFA for this role).
    pub enrolment_only: bool,
}

/// The tickets a caller may list: those of these care teams, and those of these members.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TicketScope {
    pub teams: Vec<TeamId>,
    pub members: Vec<MemberId>,
}

/// What a proxy (caregiver) may do for a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyScope {
    /// Read and write the member's messages, see their tickets and attachments.
    Messages,
    /// See the member's record (profile, health markers), who read it, and
    /// record or withdraw consent for them.
    Record,
    /// Both.
    Full,
}

impl ProxyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyScope::Messages => "messages",
            ProxyScope::Record => "record",
            ProxyScope::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "messages" => Some(ProxyScope::Messages),
            "record" => Some(ProxyScope::Record),
            "full" => Some(ProxyScope::Full),
            _ => None,
        }
    }

    /// Whether this scope includes `need`.
    pub fn covers(self, need: ProxyScope) -> bool {
        self == ProxyScope::Full || self == need
    }
}

/// Why access was allowed; recorded with reads of PHI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// The member's own data.
    Own,
    /// A caregiver with delegated access.
    Proxy,
    /// Staff on the member's care team.
    CareTeam,
    /// Tagged into the member's thread by a colleague with access, until it expires or is revoked.
    Tagged,
    /// Paged for an escalation about this member, while the ticket is unresolved.
    Paged,
    /// Broke the glass with a reason, for a limited time; privacy officers were alerted.
    BreakGlass,
    /// A safety reviewer reading the words behind a clinician's mark on a
    /// triage judgement.
    SafetyReview,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Own => "own",
            Grant::Proxy => "proxy",
            Grant::CareTeam => "care_team",
            Grant::Tagged => "tagged",
            Grant::Paged => "paged",
            Grant::BreakGlass => "break_glass",
            Grant::SafetyReview => "safety_review",
        }
    }
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user_id,
            role: self.role,
            name: self.name.clone(),
        }
    }

    fn same_org(&self, org: OrgId, what: &'static str) -> Result<()> {
        if self.org_id == org {
            Ok(())
        } else {
            Err(Error::NotFound(what))
        }
    }

    /// The scope of this proxy's grant for a member, if any.
    pub fn proxy_scope(&self, member: MemberId) -> Option<ProxyScope> {
        self.proxy_for
            .iter()
            .find(|(m, _)| *m == member)
            .map(|(_, s)| *s)
    }

    /// Members this proxy may act for with at least `need`.
    pub fn proxied(&self, need: ProxyScope) -> impl Iterator<Item = MemberId> + '_ {
        self.proxy_for
            .iter()
            .filter(move |(_, s)| s.covers(need))
            .map(|(m, _)| *m)
    }

    /// Access to a member's thread, messages, tickets and attachments.
    pub fn member_access(&self, org: OrgId, member: MemberId, team: TeamId) -> Result<Grant> {
        self.access(org, member, team, ProxyScope::Messages)
    }

    /// Access to a member's record: profile and health markers, the history
    /// of who read it, consent. Staff reach it as they reach the thread; a
    /// proxy needs the record scope.
    pub fn record_access(&self, org: OrgId, member: MemberId, team: TeamId) -> Result<Grant> {
        self.access(org, member, team, ProxyScope::Record)
    }

    fn access(
        &self,
        org: OrgId,
        member: MemberId,
        team: TeamId,
        need: ProxyScope,
    ) -> Result<Grant> {
        self.same_org(org, "member")?;
        match self.role {
            Role::Member if self.member_id == Some(member) => Ok(Grant::Own),
            Role::Proxy => match self.proxy_scope(member) {
                Some(s) if s.covers(need) => Ok(Grant::Proxy),
                Some(s) => Err(Error::forbidden(
                    "outside-proxy-scope",
                    format!(
                        "your proxy access for this member covers their {}, not their {}",
                        s.as_str(),
                        need.as_str()
                    ),
                )),
                None => Err(Error::NotFound("member")),
            },
            Role::Member => Err(Error::NotFound("member")),
            r if r.works_queues() && self.team_ids.contains(&team) => Ok(Grant::CareTeam),
            // Administrators, privacy officers and service accounts read no PHI through relationships.
            Role::Admin | Role::Service | Role::PrivacyOfficer => Err(Error::forbidden(
                "no-phi-for-role",
                format!("a {} does not read member health information", self.role),
            )),
            _ => self
                .grants
                .iter()
                .find(|(m, _)| *m == member)
                .map(|(_, g)| *g)
                .ok_or_else(|| {
                    Error::forbidden(
                        "not-on-care-team",
                        "you are not on this member's care team and hold no other grant (tag, page or break-glass) for them",
                    )
                }),
        }
    }

    /// Access to a ticket (through the member it belongs to).
    pub fn ticket_access(&self, t: &Ticket) -> Result<Grant> {
        self.member_access(t.org_id, t.member_id, t.team_id)
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound("ticket"),
                other => other,
            })
    }

    /// Access to a member's thread (`m`, the member it is about); another
    /// organization's thread is not found.
    pub fn thread_access(&self, m: &Member) -> Result<Grant> {
        self.member_access(m.org_id, m.id, m.team_id)
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound("thread"),
                other => other,
            })
    }

    /// Whether this caller, who reaches the thread, sees one of its
    /// messages: members and proxies do not see internal or call notes.
    pub fn sees_message(&self, m: &Message) -> bool {
        self.role.is_staff() || m.kind.member_visible()
    }

    /// Whose tickets a list may show this caller; `None` when nobody's.
    pub fn ticket_scope(&self) -> Option<TicketScope> {
        let scope = if self.role.is_staff() {
            TicketScope {
                teams: if self.role.works_queues() {
                    self.team_ids.clone()
                } else {
                    Vec::new()
                },
                members: self.grants.iter().map(|(m, _)| *m).collect(),
            }
        } else {
            let mut members: Vec<MemberId> = self.proxied(ProxyScope::Messages).collect();
            members.extend(self.member_id);
            TicketScope {
                teams: Vec::new(),
                members,
            }
        };
        (!scope.teams.is_empty() || !scope.members.is_empty()).then_some(scope)
    }

    /// Who sees who read a member's data: the member, their proxy with the
    /// record scope, and privacy officers.
    pub fn see_access_log(&self, m: &Member) -> Result<()> {
        if m.org_id != self.org_id {
            return Err(Error::NotFound("member"));
        }
        if matches!(self.role, Role::Member | Role::Proxy) {
            self.record_access(m.org_id, m.id, m.team_id)?;
        } else if self.role != Role::PrivacyOfficer {
            return Err(Error::forbidden(
                "privacy-officers",
                "only the member, their proxy and privacy officers see who read a member's data",
            ));
        }
        Ok(())
    }

    /// Whether this caller holds one of a ticket's pages (`pages`), which
    /// lets a paged clinician act on it from outside the care team. An
    /// alarm may be taken by any clinician — of its own organization only.
    pub fn holds_page(&self, pages: &[Page]) -> bool {
        let actor = self.actor();
        pages
            .iter()
            .any(|pg| pg.org_id == self.org_id && pg.may_ack(&actor))
    }

    /// Staff of the team's organization see its on-call rota.
    pub fn see_rota(&self, team: &CareTeam) -> Result<()> {
        if team.org_id != self.org_id || !self.role.is_staff() {
            return Err(Error::NotFound("team"));
        }
        Ok(())
    }

    /// Administrators and the team's own supervisors set its on-call rota.
    pub fn manage_rota(&self, team: &CareTeam) -> Result<()> {
        if team.org_id != self.org_id {
            return Err(Error::NotFound("team"));
        }
        let may = self.role == Role::Admin
            || (self.role == Role::Supervisor && self.team_ids.contains(&team.id));
        if !may {
            return Err(Error::forbidden(
                "rota-managers",
                "only administrators and the team's supervisors set the on-call rota",
            ));
        }
        Ok(())
    }

    /// Staff who work a ticket: reply, assign, transition.
    pub fn work_ticket(&self, t: &Ticket) -> Result<Grant> {
        let g = self.ticket_access(t)?;
        if !self.role.is_staff() {
            return Err(Error::forbidden(
                "staff-only",
                "only staff can work tickets",
            ));
        }
        Ok(g)
    }

    /// Who a new portal message is about: the member themself, or the member a proxy names.
    pub fn message_subject(&self, named: Option<MemberId>) -> Result<MemberId> {
        match self.role {
            Role::Member => {
                let own = self.member_id.ok_or(Error::NotFound("member"))?;
                match named {
                    Some(m) if m != own => Err(Error::NotFound("member")),
                    _ => Ok(own),
                }
            }
            Role::Proxy => {
                let mut writable = self.proxied(ProxyScope::Messages);
                match named {
                    Some(m) => match self.proxy_scope(m) {
                        Some(s) if s.covers(ProxyScope::Messages) => Ok(m),
                        Some(_) => Err(Error::forbidden(
                            "outside-proxy-scope",
                            "your proxy access for this member does not include writing messages",
                        )),
                        None => Err(Error::NotFound("member")),
                    },
                    None => match (writable.next(), writable.next()) {
                        (Some(m), None) => Ok(m),
                        (None, _) => Err(Error::forbidden(
                            "outside-proxy-scope",
                            "none of your proxy grants includes writing messages",
                        )),
                        (Some(_), Some(_)) => Err(Error::invalid(
                            "member_id is required: you act for more than one member",
                        )),
                    },
                }
            }
            _ => Err(Error::forbidden(
                "members-only",
                "staff write to members with replies (POST /api/v1/tickets/{id}/replies) or record calls (POST /api/v1/calls)",
            )),
        }
    }

    /// Who manages a member's caregivers: the member themself or an
    /// administrator grants; with `privacy_too`, privacy officers may also
    /// look and revoke.
    pub fn manage_proxies(&self, m: &Member, privacy_too: bool) -> Result<()> {
        if self.org_id != m.org_id {
            return Err(Error::NotFound("member"));
        }
        match self.role {
            Role::Member if self.member_id == Some(m.id) => Ok(()),
            Role::Admin => Ok(()),
            Role::PrivacyOfficer if privacy_too => Ok(()),
            Role::Member | Role::Proxy => Err(Error::NotFound("member")),
            _ => Err(Error::forbidden(
                "proxy-management",
                "caregiver access is granted by the member or an administrator",
            )),
        }
    }

    /// Who may record or withdraw a member's consent: the member, a proxy
    /// with the record scope, or a privacy officer on the member's behalf
    /// with a reason. Returns whether it is on the member's behalf, and the
    /// trimmed reason.
    pub fn record_consent(
        &self,
        m: &Member,
        reason: Option<&str>,
    ) -> Result<(bool, Option<String>)> {
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        let on_behalf = match self.role {
            Role::Member | Role::Proxy => {
                self.record_access(m.org_id, m.id, m.team_id)?;
                self.role == Role::Proxy
            }
            Role::PrivacyOfficer if self.org_id == m.org_id => {
                if reason.is_none() {
                    return Err(Error::invalid(
                        "a reason is required when consent is recorded on the member's behalf (for example, the signed form it came from)",
                    ));
                }
                true
            }
            _ if self.org_id != m.org_id => return Err(Error::NotFound("member")),
            _ => {
                return Err(Error::forbidden(
                    "consent-by-member",
                    "consent is recorded by the member, their proxy, or a privacy officer on their behalf",
                ));
            }
        };
        if reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
            return Err(Error::invalid("the reason is limited to 1000 characters"));
        }
        Ok((on_behalf, reason))
    }

    /// Who may see a member's consents: whoever may read the record, and privacy officers.
    pub fn see_consents(&self, m: &Member) -> Result<()> {
        if self.role == Role::PrivacyOfficer && self.org_id == m.org_id {
            return Ok(());
        }
        self.record_access(m.org_id, m.id, m.team_id).map(|_| ())
    }

    /// Whether this caller sees a team's queues.
    pub fn sees_team(&self, team: TeamId) -> bool {
        self.role.works_queues() && self.team_ids.contains(&team)
    }

    pub fn require(&self, allowed: &[Role], rule: &'static str, detail: &str) -> Result<()> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::forbidden(rule, detail))
        }
    }
}

#[cfg(test)]
impl Principal {
    /// A caller with `role` in `org` and no relationships, for tests.
    pub(crate) fn bare(role: Role, org: OrgId) -> Principal {
        Principal {
            user_id: UserId::new(),
            org_id: org,
            role,
            name: "x".into(),
            member_id: None,
            proxy_for: vec![],
            team_ids: vec![],
            grants: vec![],
            enrolment_only: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, org: OrgId) -> Principal {
        Principal::bare(role, org)
    }

    #[test]
    fn default_deny_for_staff_outside_the_care_team() {
        let org = OrgId::new();
        let (north, south) = (TeamId::new(), TeamId::new());
        let m = MemberId::new();
        let mut guide = p(Role::CareGuide, org);
        guide.team_ids = vec![north];
        assert_eq!(guide.member_access(org, m, north).unwrap(), Grant::CareTeam);
        assert!(matches!(
            guide.member_access(org, m, south),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            guide.member_access(OrgId::new(), m, north),
            Err(Error::NotFound(_))
        ));
        let mut admin = p(Role::Admin, org);
        admin.team_ids = vec![north];
        assert!(
            admin.member_access(org, m, north).is_err(),
            "admin reads no PHI by default"
        );
    }

    #[test]
    fn members_and_proxies_reach_only_their_own() {
        let org = OrgId::new();
        let team = TeamId::new();
        let (me, other) = (MemberId::new(), MemberId::new());
        let mut member = p(Role::Member, org);
        member.member_id = Some(me);
        assert_eq!(member.member_access(org, me, team).unwrap(), Grant::Own);
        assert!(member.member_access(org, other, team).is_err());
        assert_eq!(member.message_subject(None).unwrap(), me);
        assert!(member.message_subject(Some(other)).is_err());
        let mut proxy = p(Role::Proxy, org);
        proxy.proxy_for = vec![(me, ProxyScope::Full)];
        assert_eq!(proxy.member_access(org, me, team).unwrap(), Grant::Proxy);
        assert_eq!(proxy.message_subject(None).unwrap(), me);
        assert!(proxy.message_subject(Some(other)).is_err());
    }

    #[test]
    fn a_proxy_acts_only_within_the_scope_granted() {
        let org = OrgId::new();
        let team = TeamId::new();
        let (mum, dad) = (MemberId::new(), MemberId::new());
        let mut carer = p(Role::Proxy, org);
        carer.proxy_for = vec![(mum, ProxyScope::Messages), (dad, ProxyScope::Record)];
        assert_eq!(carer.member_access(org, mum, team).unwrap(), Grant::Proxy);
        assert!(matches!(
            carer.record_access(org, mum, team),
            Err(Error::Forbidden {
                rule: "outside-proxy-scope",
                ..
            })
        ));
        assert_eq!(carer.record_access(org, dad, team).unwrap(), Grant::Proxy);
        assert!(carer.member_access(org, dad, team).is_err());
        // Only one member's messages are in scope, so it is the default subject.
        assert_eq!(carer.message_subject(None).unwrap(), mum);
        assert!(matches!(
            carer.message_subject(Some(dad)),
            Err(Error::Forbidden {
                rule: "outside-proxy-scope",
                ..
            })
        ));
        assert!(ProxyScope::Full.covers(ProxyScope::Record));
        assert!(!ProxyScope::Messages.covers(ProxyScope::Full));
    }
}
