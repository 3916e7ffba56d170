//! One conversation rendered as HTML, shared by the console and the portal:
//! each message by kind, the triage evidence marked in the member's own
//! words (staff only), and attachments with their scan state.

use super::i18n::{Lang, t};
use super::when;
use crate::views::MessageView;
use careline_core::attachment::Attachment;
use careline_core::model::{Message, MessageKind};
use careline_triage::Judgement;
use maud::{Markup, html};

/// A piece of a message: plain text, or a span the triage engine read.
enum Piece<'a> {
    Plain(&'a str),
    Found { text: &'a str, note: String },
    Ignored { text: &'a str, note: String },
}

/// Split `text` at the judgement's evidence and suppressed spans. Offsets
/// are byte offsets on character boundaries; anything that does not fit the
/// text (or overlaps an earlier span) is left unmarked rather than trusted.
fn pieces<'a>(text: &'a str, j: Option<&Judgement>) -> Vec<Piece<'a>> {
    let mut spans: Vec<(usize, usize, bool, String)> = Vec::new();
    if let Some(j) = j {
        for e in &j.evidence {
            spans.push((
                e.start,
                e.end,
                true,
                format!("{} · {}", e.protocol, e.concept),
            ));
        }
        for s in &j.suppressed {
            spans.push((s.start, s.end, false, format!("ignored: {}", s.reason)));
        }
    }
    spans.sort_by_key(|s| (s.0, s.1));
    let mut out = Vec::new();
    let mut pos = 0;
    for (start, end, found, note) in spans {
        if start < pos || end <= start {
            continue;
        }
        let (Some(before), Some(mid)) = (text.get(pos..start), text.get(start..end)) else {
            continue;
        };
        if !before.is_empty() {
            out.push(Piece::Plain(before));
        }
        out.push(if found {
            Piece::Found { text: mid, note }
        } else {
            Piece::Ignored { text: mid, note }
        });
        pos = end;
    }
    if let Some(rest) = text.get(pos..)
        && !rest.is_empty()
    {
        out.push(Piece::Plain(rest));
    }
    out
}

/// Message text with the triage findings marked.
pub fn highlighted(text: &str, j: Option<&Judgement>) -> Markup {
    html! {
        @for p in pieces(text, j) {
            @match p {
                Piece::Plain(s) => (s),
                Piece::Found { text, note } => mark class="evidence" title=(note) { (text) },
                Piece::Ignored { text, note } => mark class="ignored" title=(note) { (text) },
            }
        }
    }
}

/// The triage judgement explained for a clinician.
pub fn judgement(j: &Judgement) -> Markup {
    let d = j.disposition.as_str();
    html! {
        div class={"triage " (d)} {
            p { span class={"badge " (d)} { (d) } " " (j.explanation) }
            @if let Some(sr) = &j.second_reader {
                p class="second-reader" {
                    strong { "Escalated for review by the second reader" }
                    " — a model trained on labelled messages read this as " (sr.to.as_str())
                    " where the protocols alone said " (sr.from.as_str()) ". "
                    @if sr.words.is_empty() {
                        "No single word stood out: the message as a whole read as a red flag."
                    } @else {
                        "The words that weighed most are marked in the message: "
                        @for (i, w) in sr.words.iter().enumerate() {
                            @if i > 0 { ", " }
                            "“" (w.text) "”"
                        }
                        "."
                    }
                }
            }
            @if !j.protocols.is_empty() {
                ul class="protocols" {
                    @for p in &j.protocols {
                        li { strong { (p.title) } " (" (p.id) ", " (p.disposition.as_str()) ")" }
                    }
                }
            }
            @if !j.suppressed.is_empty() {
                p class="muted" {
                    "Ignored: "
                    @for (i, s) in j.suppressed.iter().enumerate() {
                        @if i > 0 { "; " }
                        "“" (s.text) "” — " (s.reason)
                    }
                }
            }
            p class="muted small" { "Protocol set " (j.protocol_version) }
        }
    }
}

/// Attachments of a message with their scan state; only clean files link
/// to their download.
pub fn attachments(m: &Message, files: &[Attachment], staff: bool, lang: Lang) -> Markup {
    let view = serde_json::to_value(MessageView::new(m, staff).with_attachments(files, staff))
        .unwrap_or_default();
    let items = view
        .get("attachments")
        .and_then(|a| a.as_array())
        .cloned()
        .unwrap_or_default();
    let text = |v: &serde_json::Value, k: &str| -> String {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    html! {
        @if !items.is_empty() {
            ul class="attachments" {
                @for a in &items {
                    @let state = text(a, "state");
                    @let name = text(a, "file_name");
                    @let id = text(a, "id").parse::<uuid::Uuid>().ok();
                    @let size = a.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
                    li {
                        @match (state.as_str(), id) {
                            ("clean", Some(id)) => a href={"/api/v1/attachments/" (id) "/content"} { (name) },
                            _ => span { (name) },
                        }
                        " (" (human_size(size)) ") "
                        span class={"scan " (state)} { (t(lang, "attachment_state")) ": " (state) }
                    }
                }
            }
        }
    }
}

fn human_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1024 {
        format!("{} KB", n / 1024)
    } else {
        format!("{n} B")
    }
}

fn kind_label(k: MessageKind, lang: Lang) -> &'static str {
    match k {
        MessageKind::Member => "member",
        MessageKind::Staff => t(lang, "care_team"),
        MessageKind::InternalNote => "internal note",
        MessageKind::System => t(lang, "system"),
        MessageKind::CallNote => "call note",
    }
}

/// The messages of a conversation in order. Staff see the evidence marked
/// and the judgement beside each contact; members see their conversation.
pub fn messages(msgs: &[&Message], files: &[Attachment], staff: bool, lang: Lang) -> Markup {
    html! {
        ol class="thread" {
            @for m in msgs {
                @let k = m.kind.as_str();
                li class={"msg " (k)} id={"m-" (m.id.0)} {
                    div class="meta" {
                        strong { (m.author_name) }
                        " · " span class="kind" { (kind_label(m.kind, lang)) }
                        " · " (when(m.created_at))
                    }
                    div class="body" {
                        @if let Some(r) = &m.redaction {
                            p class="notice" {
                                (t(lang, "redacted")) " (" (when(r.at)) ")"
                                @if staff { ": " (r.reason) }
                            }
                        } @else if staff {
                            (highlighted(&m.text, m.triage.as_ref()))
                        } @else {
                            (m.text)
                        }
                    }
                    @if m.redaction.is_none() {
                        (attachments(m, files, staff, lang))
                    }
                    @if staff && m.redaction.is_none() {
                        @if let Some(j) = &m.triage {
                            (judgement(j))
                        }
                    }
                }
            }
        }
    }
}
