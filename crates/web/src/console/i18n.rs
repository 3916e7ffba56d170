//! The member portal in English and Spanish. The language comes from the
//! member's profile unless they chose one with the switch (a cookie that
//! holds only the language code).

use axum::extract::{Path, Query};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// The two languages the portal speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Es,
            Lang::Es => Lang::En,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Es => "Español",
        }
    }
}

/// A portal text in the reader's language.
pub fn t(lang: Lang, key: &str) -> &'static str {
    let (en, es) = match key {
        "portal" => ("Your care team", "Su equipo de atención"),
        "inbox" => ("Messages", "Mensajes"),
        "access" => ("Who looked at my record", "Quién vio mi expediente"),
        "sign_out" => ("Sign out", "Cerrar sesión"),
        "new_message" => ("Write to your care team", "Escriba a su equipo de atención"),
        "message" => ("Your message", "Su mensaje"),
        "attach" => (
            "Attach photos or documents (optional)",
            "Adjuntar fotos o documentos (opcional)",
        ),
        "send" => ("Send", "Enviar"),
        "sending" => ("Sending…", "Enviando…"),
        "emergency_hint" => (
            "If this is an emergency, call 911 now. Do not wait for a reply.",
            "Si es una emergencia, llame al 911 ahora. No espere una respuesta.",
        ),
        "no_threads" => ("No messages yet.", "Todavía no hay mensajes."),
        "conversation" => ("Conversation", "Conversación"),
        "started" => ("Started", "Iniciada"),
        "status" => ("Status", "Estado"),
        "reply" => ("Reply", "Responder"),
        "back" => ("Back to messages", "Volver a mensajes"),
        "you" => ("You", "Usted"),
        "acting_for" => ("Acting for", "Actuando por"),
        "switch" => ("Switch", "Cambiar"),
        "myself" => ("Myself", "Yo"),
        "when" => ("When", "Cuándo"),
        "who" => ("Who", "Quién"),
        "role" => ("Role", "Función"),
        "what" => ("What", "Qué"),
        "why" => ("Why", "Por qué"),
        "no_access" => (
            "Nobody has looked at your record yet.",
            "Nadie ha visto su expediente todavía.",
        ),
        "access_intro" => (
            "Every time someone at your care organization opens your messages or record, it is written down. This is that list.",
            "Cada vez que alguien de su organización de atención abre sus mensajes o su expediente, queda registrado. Esta es esa lista.",
        ),
        "status_waiting" => (
            "Waiting for your care team",
            "Esperando a su equipo de atención",
        ),
        "status_answered" => ("Your care team answered", "Su equipo de atención respondió"),
        "status_done" => ("Resolved", "Resuelto"),
        "attachment_state" => ("Scan", "Análisis"),
        "redacted" => (
            "This message was removed by a privacy officer",
            "Un responsable de privacidad retiró este mensaje",
        ),
        "emergency_title" => ("Call 911 now", "Llame al 911 ahora"),
        "sent" => (
            "Sent. Your care team will answer here.",
            "Enviado. Su equipo de atención le responderá aquí.",
        ),
        "uploads_unavailable" => (
            "Attachments cannot be sent yet: this service does not accept files. Your message will be sent without them.",
            "Todavía no se pueden enviar archivos: este servicio no los acepta. Su mensaje se enviará sin ellos.",
        ),
        "main_nav" => ("Portal", "Portal"),
        "see_conversation" => ("See your conversation", "Ver su conversación"),
        "care_team" => ("Care team", "Equipo de atención"),
        "system" => ("Automatic message", "Mensaje automático"),
        _ => ("", ""),
    };
    match lang {
        Lang::En => en,
        Lang::Es => es,
    }
}

#[derive(Debug, Deserialize)]
pub struct Back {
    back: Option<String>,
}

/// Remember the chosen language and go back to the page.
pub async fn switch(Path(code): Path<String>, Query(q): Query<Back>) -> Response {
    let Some(lang) = Lang::parse(&code) else {
        return Redirect::to("/portal").into_response();
    };
    // Only a path on this site: never an open redirect.
    let back = q
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/portal".into());
    let mut resp = Redirect::to(&back).into_response();
    let cookie = format!(
        "careline_lang={}; Path=/; SameSite=Strict; Max-Age=31536000",
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
