//! Newtype identifiers. A `MemberId` can never be passed where a `TicketId`
//! is expected; all are time-ordered UUIDv7 so that index pages stay hot.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

id_type!(
    /// A tenant. Nothing ever crosses organizations.
    OrgId,
    /// A patient.
    MemberId,
    /// Anyone who logs in: staff, members, proxies, service accounts.
    UserId,
    /// A care team.
    TeamId,
    /// A work queue (a team's queue or its clinical queue).
    QueueId,
    /// A member's conversation with their care team.
    ThreadId,
    /// One message in a thread.
    MessageId,
    /// A unit of work.
    TicketId,
    /// A phone contact taken by an agent.
    CallId,
    /// One entry of the event record.
    EventId,
    /// A login session.
    SessionId,
    /// A page to a clinician (or a rung of the escalation chain).
    PageId,
    /// A booked visit.
    VisitId,
    /// An outbound webhook endpoint.
    WebhookId,
    /// One delivery of an event to a webhook endpoint.
    DeliveryId,
    /// A finding of the retrospective safety audit.
    ReviewId,
    /// An uploaded file.
    AttachmentId,
    /// A clinician's mark on a triage judgement.
    MarkId,
);
