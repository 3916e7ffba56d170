//! Attachments: what a member or staff user uploaded, and where its scan
//! stands. Nothing is ever served before a clean verdict (invariant 7): a
//! file is `quarantined` on arrival, `scanning` while the scanner has it,
//! then `clean` (released), `infected` (kept for review, never served) or
//! `failed` (the scanner was down, timed out or erred; retried with
//! backoff, still not served).

use crate::authz::{Grant, Principal};
use crate::event::{EventKind, NewEvent};
use crate::ids::*;
use crate::model::{Member, Message, MessageKind, Role};
use crate::{Error, Result};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentState {
    Quarantined,
    Scanning,
    Clean,
    Infected,
    Failed,
}

impl AttachmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentState::Quarantined => "quarantined",
            AttachmentState::Scanning => "scanning",
            AttachmentState::Clean => "clean",
            AttachmentState::Infected => "infected",
            AttachmentState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "quarantined" => AttachmentState::Quarantined,
            "scanning" => AttachmentState::Scanning,
            "clean" => AttachmentState::Clean,
            "infected" => AttachmentState::Infected,
            "failed" => AttachmentState::Failed,
            _ => return None,
        })
    }

    /// Only a clean verdict releases a file.
    pub fn servable(self) -> bool {
        self == AttachmentState::Clean
    }

    /// Whether a scan may move a file from this state to `to`.
    pub fn can_become(self, to: AttachmentState) -> bool {
        use AttachmentState::*;
        matches!(
            (self, to),
            (Quarantined | Failed | Scanning, Scanning) | (Scanning, Clean | Infected | Failed)
        )
    }
}

/// One uploaded file. Its bytes live encrypted in the blob store under
/// `blob`; the database keeps what is needed to show and find it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: AttachmentId,
    pub org_id: OrgId,
    pub member_id: MemberId,
    pub uploaded_by: UserId,
    /// Sanitized; shown, never used as a path.
    pub file_name: String,
    /// Decided from the content, not from the name or the declared type.
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    /// Where the encrypted bytes are in the blob store.
    pub blob: String,
    pub state: AttachmentState,
    /// The signature that matched (infected) or the last scanner error (failed).
    pub detail: Option<String>,
    pub scan_attempts: u32,
    /// What was stripped before storage (EXIF, GPS, XMP, comments).
    pub metadata_removed: Vec<String>,
    pub message_id: Option<MessageId>,
    pub thread_id: Option<ThreadId>,
    pub ticket_id: Option<TicketId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How long to wait before scanning again after the `attempts`-th failure:
/// 5 s doubling, at most 10 minutes. The worker adds jitter.
pub fn retry_delay(attempts: u32) -> SignedDuration {
    let secs = 5i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(10));
    SignedDuration::from_secs(secs.min(600))
}

/// What the member is told when a file they sent is refused, in their language.
pub fn refusal_notice(language: &str, file_name: &str) -> String {
    if language.starts_with("es") {
        format!(
            "Mensaje automático: no pudimos aceptar el archivo «{file_name}» porque nuestro control de seguridad detectó contenido dañino. Nadie lo abrirá. Si era una foto o un documento para su equipo de atención, envíelo de nuevo desde otro dispositivo o tráigalo a su próxima visita."
        )
    } else {
        format!(
            "Automatic message: we could not accept the file \"{file_name}\" because our security check found harmful content in it. Nobody will open it. If it was a photo or document for your care team, please send it again from another device or bring it to your next visit."
        )
    }
}

/// The internal note staff see on the ticket.
pub fn infected_note(file_name: &str, signature: &str) -> String {
    format!(
        "Attachment \"{file_name}\" was refused by the virus scanner ({signature}). It is quarantined and will never be served; security staff were alerted. A privacy officer can export it for review with a reason."
    )
}

/// Who may see an attachment: whoever reaches its member's thread (`m`,
/// the member it was uploaded for), within [`check_visible`]'s limits.
/// Returns the grant that allowed it.
pub fn access(
    p: &Principal,
    m: &Member,
    a: &Attachment,
    message_kind: Option<&str>,
) -> Result<Grant> {
    let grant = p
        .member_access(m.org_id, m.id, m.team_id)
        .map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound("attachment"),
            other => other,
        })?;
    check_visible(p, a, message_kind)?;
    Ok(grant)
}

/// Who may see an attachment, given how the caller reaches its member
/// (`grant`, already decided) and the kind of message it was sent with:
/// members and proxies never see files of internal notes or call notes;
/// an upload not yet sent belongs to its uploader alone.
pub fn check_visible(p: &Principal, a: &Attachment, message_kind: Option<&str>) -> Result<()> {
    let unsent_other = a.message_id.is_none() && a.uploaded_by != p.user_id;
    let staff_only = matches!(message_kind, Some("internal_note" | "call_note"));
    if unsent_other || (!p.role.is_staff() && staff_only) {
        return Err(Error::NotFound("attachment"));
    }
    Ok(())
}

impl Attachment {
    /// Whether `by` may attach this upload to their new message `m` about
    /// `member`: their own upload, for that member, not attached yet.
    pub fn check_link(&self, m: &Message, by: UserId, member: MemberId) -> Result<()> {
        let id = self.id;
        if self.org_id != m.org_id || self.uploaded_by != by {
            return Err(Error::invalid(format!(
                "attachment {id} was not uploaded by you"
            )));
        }
        if self.member_id != member {
            return Err(Error::invalid(format!(
                "attachment {id} was uploaded for another member"
            )));
        }
        if self.message_id.is_some() {
            return Err(already_attached(id));
        }
        Ok(())
    }

    /// `by` attached this upload to message `m` of `team`'s member.
    pub fn attach(&mut self, m: &Message, team: TeamId, by: UserId) -> NewEvent {
        self.message_id = Some(m.id);
        self.thread_id = Some(m.thread_id);
        self.ticket_id = m.ticket_id;
        event(
            EventKind::AttachmentAttached,
            self,
            Some(team),
            json!({"message_id": m.id}),
        )
        .actor(Some(by))
    }

    /// Only a clean file is served.
    pub fn check_servable(&self) -> Result<()> {
        if self.state.servable() {
            return Ok(());
        }
        Err(Error::Conflict {
            rule: "attachment-not-released",
            detail: match self.state {
                AttachmentState::Infected => {
                    "this file was refused by the virus scanner and is never served".into()
                }
                s => format!(
                    "this file is {} and is served only after a clean scan",
                    s.as_str()
                ),
            },
        })
    }

    /// A scanner took the file (claimed until its lease runs out).
    pub fn start_scan(&mut self, team: TeamId, now: Timestamp) -> NewEvent {
        self.state = AttachmentState::Scanning;
        self.scan_attempts += 1;
        self.updated_at = now;
        event(
            EventKind::AttachmentScanning,
            self,
            Some(team),
            json!({"attempt": self.scan_attempts}),
        )
    }

    /// A scan's verdict moves the file to `to` (with the signature or the
    /// scanner's error in `detail`), if a scan may.
    pub fn finish_scan(
        &mut self,
        to: AttachmentState,
        detail: Option<String>,
        now: Timestamp,
    ) -> Result<()> {
        if !self.state.can_become(to) {
            return Err(Error::Conflict {
                rule: "attachment-state",
                detail: format!(
                    "attachment {} is {}, not being scanned",
                    self.id,
                    self.state.as_str()
                ),
            });
        }
        self.state = to;
        self.detail = detail;
        self.updated_at = now;
        Ok(())
    }

    /// A privacy officer `by` exports a file that was never released, with
    /// a reason (see [`export_reason`]).
    pub fn export(&self, by: UserId, reason: &str) -> Result<NewEvent> {
        if self.state == AttachmentState::Clean {
            return Err(Error::Conflict {
                rule: "attachment-released",
                detail: "this file was released by a clean scan; it is downloaded through the thread, not exported".into(),
            });
        }
        Ok(event(
            EventKind::AttachmentExported,
            self,
            None,
            json!({"reason": reason}),
        )
        .actor(Some(by)))
    }
}

/// The refusal when an upload is (or just became) attached to a message.
pub fn already_attached(id: AttachmentId) -> Error {
    Error::invalid(format!("attachment {id} is already attached to a message"))
}

/// Only privacy officers export quarantined files, each with a reason of
/// 1–1000 characters (returned trimmed).
pub fn export_reason(p: &Principal, reason: &str) -> Result<String> {
    p.require(
        &[Role::PrivacyOfficer],
        "privacy-officers",
        "only privacy officers export quarantined files",
    )?;
    crate::validate::reason(
        reason,
        1..=1000,
        "an export needs a reason of 1–1000 characters",
    )
}

/// When an infected file is attached to a thread (`member`'s), the member
/// is told in their language and staff get an internal note: the two
/// messages, each with its event, in the order to write them. None when
/// the file is not on a ticket.
pub fn refusal_notices(
    a: &Attachment,
    member: &Member,
    now: Timestamp,
) -> Vec<(Message, NewEvent)> {
    let (Some(thread), Some(ticket)) = (a.thread_id, a.ticket_id) else {
        return Vec::new();
    };
    let signature = a.detail.clone().unwrap_or_else(|| "malware".into());
    let notices = [
        (
            MessageKind::System,
            "careline",
            refusal_notice(&member.language, &a.file_name),
        ),
        (
            MessageKind::InternalNote,
            "careline scanner",
            infected_note(&a.file_name, &signature),
        ),
    ];
    notices
        .into_iter()
        .map(|(kind, author, text)| {
            let msg = Message {
                id: MessageId::new(),
                org_id: a.org_id,
                thread_id: thread,
                ticket_id: Some(ticket),
                kind,
                author_id: None,
                author_name: author.into(),
                text,
                triage: None,
                created_at: now,
                redaction: None,
            };
            let ev = NewEvent::new(
                EventKind::MessageCreated,
                json!({"message_id": msg.id, "kind": msg.kind, "text_sha256": crate::ingest::text_digest(&msg.text), "about_attachment": a.id}),
            )
            .member(a.member_id)
            .thread(thread)
            .ticket(ticket)
            .team(member.team_id);
            (msg, ev)
        })
        .collect()
}

/// An attachment's event, scoped to its member, thread, ticket and team.
pub fn event(
    kind: EventKind,
    a: &Attachment,
    team: Option<TeamId>,
    extra: serde_json::Value,
) -> NewEvent {
    let mut payload = json!({"attachment_id": a.id, "state": a.state, "content_type": a.content_type, "size": a.size});
    if let (Some(o), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let mut ev = NewEvent::new(kind, payload).member(a.member_id);
    if let Some(t) = a.thread_id {
        ev = ev.thread(t);
    }
    if let Some(t) = a.ticket_id {
        ev = ev.ticket(t);
    }
    if let Some(t) = team {
        ev = ev.team(t);
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clean_verdict_serves_and_scans_move_forward() {
        use AttachmentState::*;
        assert!(Clean.servable());
        for s in [Quarantined, Scanning, Infected, Failed] {
            assert!(!s.servable(), "{s:?}");
        }
        assert!(Quarantined.can_become(Scanning));
        assert!(Failed.can_become(Scanning));
        assert!(Scanning.can_become(Clean));
        assert!(!Quarantined.can_become(Clean), "no release without a scan");
        assert!(!Infected.can_become(Scanning));
        assert!(!Clean.can_become(Infected));
    }

    #[test]
    fn retries_back_off_to_ten_minutes() {
        assert_eq!(retry_delay(1), SignedDuration::from_secs(5));
        assert_eq!(retry_delay(2), SignedDuration::from_secs(10));
        assert_eq!(retry_delay(40), SignedDuration::from_secs(600));
    }
}
