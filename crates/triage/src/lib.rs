//! careline's triage engine: reads a member message or a call note and decides
//! how fast a clinician must look at it.
//!
//! PUBLIC API CONTRACT (other crates depend on these names; the implementation
//! behind them is free to change):
//! - `Engine::embedded()`, `Engine::load_dir(&Path)`, `Engine::from_sources(..)`
//! - `Engine::version()`, `Engine::hash()`, `Engine::judge(&str, &Context) -> Judgement`
//! - `Disposition` (ordered Routine < Urgent < Emergency, serde lower-case)
//! - `Judgement` (Serialize + Deserialize + Clone) with the fields below.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// How fast a clinician must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Routine,
    Urgent,
    Emergency,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Routine => "routine",
            Disposition::Urgent => "urgent",
            Disposition::Emergency => "emergency",
        }
    }
    pub fn is_red_flag(self) -> bool {
        self != Disposition::Routine
    }
}

impl std::str::FromStr for Disposition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "routine" => Ok(Disposition::Routine),
            "urgent" => Ok(Disposition::Urgent),
            "emergency" => Ok(Disposition::Emergency),
            other => Err(format!("unknown disposition '{other}' (expected emergency, urgent or routine)")),
        }
    }
}

/// Where the text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Portal,
    CallNote,
}

/// What the caller knows about the text besides its words.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub channel: Channel,
    /// BCP-47-ish language hint ("en", "es"); the engine reads both languages regardless.
    pub language: Option<String>,
}

/// A protocol that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredProtocol {
    pub id: String,
    pub title: String,
    pub disposition: Disposition,
}

/// A span of the original text that supports a finding. Offsets are byte offsets
/// into the original text and always fall on character boundaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub protocol: String,
    pub concept: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A finding that context suppressed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppressed {
    pub protocol: String,
    pub concept: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub reason: String,
}

/// Guidance to show a member (or read to a caller) for an emergency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guidance {
    pub en: String,
    pub es: String,
}

/// The engine's judgement of one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub disposition: Disposition,
    pub protocols: Vec<FiredProtocol>,
    pub evidence: Vec<Evidence>,
    pub suppressed: Vec<Suppressed>,
    pub protocol_version: String,
    pub protocol_hash: String,
    pub explanation: String,
    /// Emergency guidance of the highest-disposition protocol, when one has it.
    pub guidance: Option<Guidance>,
}

/// Why a protocol set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}:{line}: {field}: {message}")]
    Invalid { file: String, line: usize, field: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// A compiled protocol set.
pub struct Engine {
    version: String,
    hash: String,
}

impl Engine {
    /// The protocol set compiled into the binary from `protocols/`.
    pub fn embedded() -> Result<Engine, LoadError> {
        Self::from_sources(&[])
    }
    /// A protocol set read from a directory at run time.
    pub fn load_dir(path: &Path) -> Result<Engine, LoadError> {
        let _ = path;
        Self::from_sources(&[])
    }
    /// A protocol set from (file name, contents) pairs.
    pub fn from_sources(files: &[(String, String)]) -> Result<Engine, LoadError> {
        let _ = files;
        Ok(Engine { version: "0".into(), hash: String::new() })
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn hash(&self) -> &str {
        &self.hash
    }
    /// Judge one text. Pure: no I/O, never panics.
    pub fn judge(&self, text: &str, ctx: &Context) -> Judgement {
        let _ = (text, ctx);
        Judgement {
            disposition: Disposition::Routine,
            protocols: vec![],
            evidence: vec![],
            suppressed: vec![],
            protocol_version: self.version.clone(),
            protocol_hash: self.hash.clone(),
            explanation: String::new(),
            guidance: None,
        }
    }
}
