//! Attachments: what a member or staff user uploaded, and where its scan
//! stands. Nothing is ever served before a clean verdict (invariant 7): a
//! file is `quarantined` on arrival, `scanning` while the scanner has it,
//! then `clean` (released), `infected` (kept for review, never served) or
//! `failed` (the scanner was down, timed out or erred; retried with
//! backoff, still not served).

use crate::ids::*;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

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

/// Who may see an attachment, given how the caller reaches its member
/// (`grant`, already decided) and the kind of message it was sent with:
/// members and proxies never see files of internal notes or call notes;
/// an upload not yet sent belongs to its uploader alone.
pub fn check_visible(
    p: &crate::authz::Principal,
    a: &Attachment,
    message_kind: Option<&str>,
) -> crate::Result<()> {
    let unsent_other = a.message_id.is_none() && a.uploaded_by != p.user_id;
    let staff_only = matches!(message_kind, Some("internal_note" | "call_note"));
    if unsent_other || (!p.role.is_staff() && staff_only) {
        return Err(crate::Error::NotFound("attachment"));
    }
    Ok(())
}

/// An attachment's event, scoped to its member, thread, ticket and team.
pub fn event(
    kind: crate::event::EventKind,
    a: &Attachment,
    team: Option<TeamId>,
    extra: serde_json::Value,
) -> crate::event::NewEvent {
    let mut payload = serde_json::json!({"attachment_id": a.id, "state": a.state, "content_type": a.content_type, "size": a.size});
    if let (Some(o), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let mut ev = crate::event::NewEvent::new(kind, payload).member(a.member_id);
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
