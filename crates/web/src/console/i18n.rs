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
        "what_search" => (
            "found you in a search (name, phone or birth date)",
            "le encontró en una búsqueda (nombre, teléfono o fecha de nacimiento)",
        ),
        "sharing" => ("Sharing", "Compartir"),
        "sharing_title" => ("Sharing and caregivers", "Compartir y cuidadores"),
        "consent_h" => (
            "Sensitive health information",
            "Información de salud delicada",
        ),
        "consent_intro" => (
            "The nurses and doctors on your care team always see this information, because they treat you. Other clinicians who help with your care, such as a colleague your team asks for advice or the clinician on call in an emergency, see it only if you agree. You can change your mind at any time, and every change is recorded.",
            "Las enfermeras y los médicos de su equipo de atención siempre ven esta información, porque le atienden. Otros profesionales que ayudan con su atención, como un colega a quien su equipo pide consejo o el profesional de guardia en una emergencia, solo la ven si usted lo acepta. Puede cambiar de opinión cuando quiera, y cada cambio queda registrado.",
        ),
        "cat_behavioral_health" => (
            "Mental and behavioral health",
            "Salud mental y del comportamiento",
        ),
        "cat_behavioral_health_about" => (
            "Conditions such as depression, anxiety or bipolar disorder, counselling, and the medicines for them.",
            "Afecciones como la depresión, la ansiedad o el trastorno bipolar, la terapia y sus medicamentos.",
        ),
        "cat_substance_use" => ("Alcohol and drug use", "Consumo de alcohol y drogas"),
        "cat_substance_use_about" => (
            "Treatment or counselling for alcohol or drug use, and medicines such as buprenorphine.",
            "Tratamiento o terapia por consumo de alcohol o drogas, y medicamentos como la buprenorfina.",
        ),
        "cat_sexual_reproductive_health" => (
            "Sexual and reproductive health",
            "Salud sexual y reproductiva",
        ),
        "cat_sexual_reproductive_health_about" => (
            "Pregnancy, birth control, fertility, abortion care and sexually transmitted infections.",
            "Embarazo, anticonceptivos, fertilidad, atención del aborto e infecciones de transmisión sexual.",
        ),
        "cat_hiv" => ("HIV", "VIH"),
        "cat_hiv_about" => (
            "HIV tests, results and treatment.",
            "Pruebas de VIH, sus resultados y el tratamiento.",
        ),
        "shared" => (
            "Shared with the clinicians who help with your care",
            "Compartida con los profesionales que ayudan con su atención",
        ),
        "not_shared" => (
            "Only your care team sees it",
            "Solo su equipo de atención la ve",
        ),
        "share" => ("Share", "Compartir"),
        "stop_sharing" => ("Stop sharing", "Dejar de compartir"),
        "no_record_scope" => (
            "Your caregiver access does not include this person's health record, so you cannot see or change what they share.",
            "Su acceso como cuidador no incluye el expediente de esta persona, así que no puede ver ni cambiar lo que comparte.",
        ),
        "caregivers_h" => ("Caregivers", "Cuidadores"),
        "caregivers_intro" => (
            "A caregiver is someone you trust, such as a family member or friend, who can use this portal for you. You choose what they may do, and you can end their access at any time.",
            "Un cuidador es alguien de su confianza, como un familiar o un amigo, que puede usar este portal por usted. Usted elige lo que puede hacer y puede quitarle el acceso cuando quiera.",
        ),
        "no_caregivers" => ("Nobody acts for you.", "Nadie actúa por usted."),
        "scope_messages" => (
            "Messages: reads and writes your messages to your care team",
            "Mensajes: lee y escribe sus mensajes a su equipo de atención",
        ),
        "scope_record" => (
            "Record: sees your health record and who looked at it, and chooses what you share",
            "Expediente: ve su expediente y quién lo consultó, y elige lo que usted comparte",
        ),
        "scope_full" => (
            "Everything: your messages and your record",
            "Todo: sus mensajes y su expediente",
        ),
        "since" => ("Since", "Desde"),
        "until" => ("Until", "Hasta"),
        "no_end" => ("No end date", "Sin fecha de fin"),
        "consent_intro_other" => (
            "The nurses and doctors on their care team always see this information, because they treat them. Other clinicians who help with their care see it only if they agree. Every change is recorded.",
            "Las enfermeras y los médicos de su equipo de atención siempre ven esta información, porque le atienden. Otros profesionales que ayudan con su atención solo la ven si lo acepta. Cada cambio queda registrado.",
        ),
        "not_shared_other" => (
            "Only their care team sees it",
            "Solo su equipo de atención la ve",
        ),
        "scope_messages_other" => (
            "Messages: you read and write their messages to their care team",
            "Mensajes: usted lee y escribe sus mensajes a su equipo de atención",
        ),
        "scope_record_other" => (
            "Record: you see their health record and who looked at it, and choose what they share",
            "Expediente: usted ve su expediente y quién lo consultó, y elige lo que comparte",
        ),
        "scope_full_other" => (
            "Everything: their messages and their record",
            "Todo: sus mensajes y su expediente",
        ),
        "end_access" => ("End access", "Quitar acceso"),
        "end_access_confirm" => (
            "End this caregiver's access now?",
            "¿Quitar ahora el acceso a este cuidador?",
        ),
        "add_caregiver" => ("Add a caregiver", "Añadir un cuidador"),
        "caregiver_username" => ("Caregiver's username", "Nombre de usuario del cuidador"),
        "caregiver_username_hint" => (
            "They need their own caregiver account; ask your care team if they do not have one.",
            "Necesita su propia cuenta de cuidador; pida una a su equipo de atención si no la tiene.",
        ),
        "what_they_may_do" => ("What they may do", "Lo que puede hacer"),
        "until_optional" => ("Until (optional)", "Hasta (opcional)"),
        "give_access" => ("Give access", "Dar acceso"),
        "you_help_h" => ("People you help", "Personas a las que ayuda"),
        "you_help_intro" => (
            "You act for these people, with the access each of them gave you. You can step back at any time; they will need to add you again.",
            "Usted actúa por estas personas, con el acceso que cada una le dio. Puede dejar de ayudar cuando quiera; tendrían que volver a añadirle.",
        ),
        "step_back" => ("Step back", "Dejar de ayudar"),
        "step_back_confirm" => (
            "Stop acting for this person? You will no longer see their messages or record.",
            "¿Dejar de actuar por esta persona? Ya no verá sus mensajes ni su expediente.",
        ),
        "nobody_to_help" => (
            "You do not act for anyone at the moment.",
            "En este momento no actúa por nadie.",
        ),
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
