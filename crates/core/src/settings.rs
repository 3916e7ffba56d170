//! An organization's own settings: service-level targets, acknowledgement
//! deadlines, and the emergency guidance careline sends in its name.

use crate::authz::Principal;
use crate::escalation::AckPolicy;
use crate::event::{EventKind, NewEvent};
use crate::sla::SlaPolicies;
use careline_triage::{Disposition, Judgement};
use serde::{Deserialize, Serialize};

/// Everything an organization can tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgSettings {
    #[serde(default)]
    pub sla: SlaPolicies,
    #[serde(default)]
    pub ack: AckPolicy,
    #[serde(default)]
    pub emergency: EmergencyText,
    /// Roles that must log in with a second factor (TOTP).
    #[serde(default = "default_mfa_roles")]
    pub mfa_required_roles: Vec<crate::model::Role>,
    /// The review net: what happens to a routine contact that reads as clinical.
    #[serde(default)]
    pub clinical_review: ClinicalReview,
    /// How long a clinician has to review a marked ticket (the same-day clock).
    #[serde(default = "default_review_within_minutes")]
    pub review_within_minutes: u32,
}

/// What the review net does with a routine contact that reads as clinical.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClinicalReview {
    /// Nothing: the engine's routine judgement stands alone.
    Off,
    /// Mark the ticket "nurse review" in the team queue, with the same-day
    /// review clock; only a clinician clears the mark.
    #[default]
    Flag,
    /// As `flag`, and route the ticket to the clinical queue (routine SLA).
    Route,
}

impl ClinicalReview {
    pub fn as_str(self) -> &'static str {
        match self {
            ClinicalReview::Off => "off",
            ClinicalReview::Flag => "flag",
            ClinicalReview::Route => "route",
        }
    }
}

/// Eight hours: a clinician reads a clinical routine message the same day.
pub fn default_review_within_minutes() -> u32 {
    480
}

/// Clinical, privacy and administrative roles hold the keys to PHI.
pub fn default_mfa_roles() -> Vec<crate::model::Role> {
    use crate::model::Role;
    vec![
        Role::Nurse,
        Role::Physician,
        Role::PrivacyOfficer,
        Role::Admin,
    ]
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            sla: Default::default(),
            ack: Default::default(),
            emergency: Default::default(),
            mfa_required_roles: default_mfa_roles(),
            clinical_review: ClinicalReview::default(),
            review_within_minutes: default_review_within_minutes(),
        }
    }
}

impl OrgSettings {
    /// An administrator `p` replaces the organization's settings with these;
    /// the change is recorded (as `rota.set`, the kind it has always had).
    pub fn change_event(&self, p: &Principal) -> crate::Result<NewEvent> {
        p.require(
            &[crate::model::Role::Admin],
            "admin-only",
            "only administrators change organization settings",
        )?;
        if !(1..=1440).contains(&self.review_within_minutes) {
            return Err(crate::Error::invalid(
                "review_within_minutes must be 1–1440: the review net's clock is a same-day clock",
            ));
        }
        Ok(
            NewEvent::new(EventKind::RotaSet, serde_json::json!({"settings": self}))
                .actor(Some(p.user_id)),
        )
    }
}

/// The words of the automatic emergency reply. `{symptom}` is replaced by
/// the member's own words that fired the red flag, `{number}` by the
/// emergency number, `{nurse}` by the paged clinician's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyText {
    pub number: String,
    pub en: String,
    pub es: String,
    /// Shown to the contact-centre agent when a call note is an emergency.
    pub agent: String,
}

impl Default for EmergencyText {
    fn default() -> Self {
        EmergencyText {
            number: "911".into(),
            en: "This is an automatic message from your care team. You wrote about {symptom}. That can be an emergency. \
                 Call {number} now or go to the nearest emergency department — do not wait for a reply here. \
                 A nurse has been alerted and will contact you."
                .into(),
            es: "Este es un mensaje automático de su equipo de atención. Usted escribió sobre {symptom}. Eso puede ser una emergencia. \
                 Llame al {number} ahora o vaya a la sala de emergencias más cercana; no espere una respuesta aquí. \
                 Ya avisamos a una enfermera, que se comunicará con usted."
                .into(),
            agent: "EMERGENCY ({symptom}): tell the caller to hang up and call {number} now, or stay on the line and conference {number} in. \
                    Then warm-transfer to the on-call nurse ({nurse}). Do not book an office visit."
                .into(),
        }
    }
}

/// The member's own words behind the strongest finding, quoted.
pub fn symptom_words(j: &Judgement) -> String {
    let strongest: Vec<&str> = j
        .protocols
        .iter()
        .filter(|p| p.disposition == j.disposition)
        .map(|p| p.id.as_str())
        .collect();
    let mut words: Vec<String> = Vec::new();
    for e in j
        .evidence
        .iter()
        .filter(|e| strongest.contains(&e.protocol.as_str()))
    {
        let w = format!("\u{201c}{}\u{201d}", e.text.trim());
        if !words.contains(&w) {
            words.push(w);
        }
        if words.len() == 3 {
            break;
        }
    }
    if words.is_empty() {
        j.protocols
            .first()
            .map(|p| p.title.to_lowercase())
            .unwrap_or_else(|| "your symptoms".into())
    } else {
        words.join(", ")
    }
}

impl EmergencyText {
    /// The reply a member gets, in their language.
    pub fn member_reply(&self, language: &str, j: &Judgement) -> String {
        let t = if language == "es" { &self.es } else { &self.en };
        t.replace("{symptom}", &symptom_words(j))
            .replace("{number}", &self.number)
    }

    /// What the agent must tell an emergency caller.
    pub fn agent_guidance(&self, j: &Judgement, nurse: &str) -> String {
        let titles: Vec<&str> = j
            .protocols
            .iter()
            .filter(|p| p.disposition == Disposition::Emergency)
            .map(|p| p.title.as_str())
            .collect();
        self.agent
            .replace("{symptom}", &titles.join(", "))
            .replace("{number}", &self.number)
            .replace("{nurse}", nurse)
    }
}
