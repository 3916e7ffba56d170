//! Reads of PHI as the record keeps them. Every read of a member's data by
//! anyone but the member is a `phi.read` event naming who read what, with
//! which role, and the grant that allowed it; the member then sees it in
//! their access history. The stores load and authorize, describe each read
//! with a [`PhiRead`], and append the events [`recorded`] returns.

use crate::attachment::Attachment;
use crate::authz::{Grant, Principal};
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{Member, Thread, Ticket};
use serde_json::json;

/// One read of a member's data.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiRead {
    pub org: OrgId,
    pub member: MemberId,
    /// What was read: thread, ticket, ticket_list, pages, member, search, attachment.
    pub what: &'static str,
    /// The record read (for a ticket list, its first ticket of the member).
    pub id: String,
    /// Why it was allowed.
    pub grant: Grant,
}

impl PhiRead {
    /// A member's thread and its messages.
    pub fn thread(t: &Thread, grant: Grant) -> PhiRead {
        PhiRead {
            org: t.org_id,
            member: t.member_id,
            what: "thread",
            id: t.id.to_string(),
            grant,
        }
    }

    /// A ticket, or something shown through it (`what`: ticket, ticket_list, pages).
    pub fn ticket(t: &Ticket, what: &'static str, grant: Grant) -> PhiRead {
        PhiRead {
            org: t.org_id,
            member: t.member_id,
            what,
            id: t.id.to_string(),
            grant,
        }
    }

    /// A member's record.
    pub fn member(m: &Member, grant: Grant) -> PhiRead {
        PhiRead {
            org: m.org_id,
            member: m.id,
            what: "member",
            id: m.id.to_string(),
            grant,
        }
    }

    /// A member a call-taker's search returned.
    pub fn search(org: OrgId, member: MemberId, grant: Grant) -> PhiRead {
        PhiRead {
            org,
            member,
            what: "search",
            id: member.to_string(),
            grant,
        }
    }

    /// A file downloaded.
    pub fn attachment(a: &Attachment, grant: Grant) -> PhiRead {
        PhiRead {
            org: a.org_id,
            member: a.member_id,
            what: "attachment",
            id: a.id.to_string(),
            grant,
        }
    }

    /// The event recording this read by `p`.
    pub fn event(&self, p: &Principal) -> NewEvent {
        NewEvent::new(
            EventKind::PhiRead,
            json!({"resource": self.what, "id": self.id, "grant": self.grant.as_str(), "role": p.role}),
        )
        .actor(Some(p.user_id))
        .member(self.member)
    }
}

/// A ticket list shows triage evidence: one read per member listed, named
/// by the member's first ticket in the list. Tickets the caller does not
/// reach are left out.
pub fn ticket_list<'a>(
    p: &Principal,
    tickets: impl IntoIterator<Item = &'a Ticket>,
) -> Vec<PhiRead> {
    let mut reads: Vec<PhiRead> = Vec::new();
    for t in tickets {
        if !reads.iter().any(|r| r.member == t.member_id)
            && let Ok(grant) = p.ticket_access(t)
        {
            reads.push(PhiRead::ticket(t, "ticket_list", grant));
        }
    }
    reads
}

/// The events recording `reads` by `p`, by organization (in the order each
/// first appears), each organization's in the order read. A member reading
/// their own data is not recorded.
pub fn recorded(p: &Principal, reads: &[PhiRead]) -> Vec<(OrgId, Vec<NewEvent>)> {
    let mut out: Vec<(OrgId, Vec<NewEvent>)> = Vec::new();
    for r in reads.iter().filter(|r| r.grant != Grant::Own) {
        let ev = r.event(p);
        match out.iter_mut().find(|(org, _)| *org == r.org) {
            Some((_, events)) => events.push(ev),
            None => out.push((r.org, vec![ev])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    #[test]
    fn own_reads_are_not_recorded_and_the_rest_keep_their_order() {
        let org = OrgId::new();
        let p = Principal::bare(Role::Nurse, org);
        let (a, b) = (MemberId::new(), MemberId::new());
        let reads = [
            PhiRead::search(org, a, Grant::CareTeam),
            PhiRead::search(org, b, Grant::Own),
            PhiRead::search(org, b, Grant::BreakGlass),
        ];
        let out = recorded(&p, &reads);
        assert_eq!(out.len(), 1);
        let (o, events) = &out[0];
        assert_eq!(*o, org);
        assert_eq!(
            events.iter().map(|e| e.member_id).collect::<Vec<_>>(),
            vec![Some(a), Some(b)]
        );
        assert_eq!(events[1].payload["grant"], "break_glass");
        assert_eq!(events[1].payload["resource"], "search");
        assert_eq!(events[1].actor_id, Some(p.user_id));
    }
}
