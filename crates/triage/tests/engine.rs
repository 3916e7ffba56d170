//! Integration tests for the triage engine: the safety floor on the labelled
//! development set, behaviour a nurse would notice on hand-written messages,
//! protocol loading and validation, JSONL processing, and robustness over
//! arbitrary input (proptest).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use careline_triage::{Channel, Context, Disposition, Engine, LoadError, eval, jsonl};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

/// The rules alone: what the protocol files say, without the second reader.
fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        Engine::embedded()
            .expect("embedded protocol set loads")
            .with_reader(None)
    })
}

/// The engine as careline runs it: the rules and the second reader.
fn full() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::embedded().expect("embedded protocol set loads"))
}

fn judge(text: &str) -> Disposition {
    engine().judge(text, &Context::default()).disposition
}

fn call_note(text: &str) -> Disposition {
    engine()
        .judge(
            text,
            &Context {
                channel: Channel::CallNote,
                language: None,
            },
        )
        .disposition
}

fn assert_all(cases: &[&str], expected: Disposition) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|t| {
            let j = engine().judge(t, &Context::default());
            (j.disposition != expected)
                .then(|| format!("  {t:?} -> {} ({})", j.disposition.as_str(), j.explanation))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "expected {}:\n{}",
        expected.as_str(),
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------- safety floor

/// Every emergency and urgent message of the labelled development set is
/// escalated (judged at least urgent). Fails listing each missed message.
#[test]
fn safety_floor_every_red_flag_in_dev_set_is_escalated() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/dev.jsonl");
    let Ok(file) = std::fs::File::open(path) else {
        panic!("{path} is missing: the safety floor cannot be checked");
    };
    let (examples, errors) = eval::read_examples(std::io::BufReader::new(file));
    assert!(
        errors.is_empty(),
        "unreadable lines in dev.jsonl: {errors:?}"
    );
    assert!(
        examples.len() >= 100,
        "dev set unexpectedly small: {}",
        examples.len()
    );
    let report = eval::evaluate(engine(), &examples);
    let missed: Vec<String> = report
        .unescalated()
        .map(|m| {
            format!(
                "  [{}] expected {}, judged {}: {}\n      {}",
                m.id,
                m.expected.as_str(),
                m.got.as_str(),
                m.text,
                m.explanation
            )
        })
        .collect();
    assert!(
        missed.is_empty(),
        "{} red-flag message(s) not escalated:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

/// The two blind sets (written by someone who never saw the engine, with a
/// `why` per message) that protocol sets 2026.11.2 (blind-a) and 2026.11.3
/// (blind-b) were reviewed against: every emergency and urgent message is
/// escalated.
#[test]
fn safety_floor_every_red_flag_in_both_tuned_blind_sets_is_escalated() {
    for name in ["blind-a.jsonl", "blind-b.jsonl"] {
        let path = format!("{}/eval/{name}", env!("CARGO_MANIFEST_DIR"));
        let Ok(file) = std::fs::File::open(&path) else {
            panic!("{path} is missing: the safety floor cannot be checked");
        };
        let (examples, errors) = eval::read_examples(std::io::BufReader::new(file));
        assert!(errors.is_empty(), "unreadable lines in {name}: {errors:?}");
        assert_eq!(examples.len(), 120, "{name} changed size");
        let report = eval::evaluate(engine(), &examples);
        let missed: Vec<String> = report
            .unescalated()
            .map(|m| {
                format!(
                    "  [{}] expected {}, judged {}: {}\n      {}",
                    m.id,
                    m.expected.as_str(),
                    m.got.as_str(),
                    m.text,
                    m.explanation
                )
            })
            .collect();
        assert!(
            missed.is_empty(),
            "{name}: {} red-flag message(s) not escalated:\n{}",
            missed.len(),
            missed.join("\n")
        );
    }
}

/// The classes of phrasing the second blind-set review (2026.11.3) added,
/// checked on sentences written for this test.
#[test]
fn phrasing_classes_from_the_second_blind_set_review() {
    assert_all(
        &[
            "on coumadin, INR 5.8 at the clinic this morning, feel fine",
            "pt w CHF, wt up 4 lbs over 2 days, ankles more swollen than usual",
            "the area around the scrape is red and has spread past the marker outline",
            "my knee looks kind of crooked after the fall and it's swollen",
            "left eye hurts and is bloodshot, bright light hurts my eyes, I wear contacts",
            "desde que empecé la amoxicilina tengo ronchas que me pican",
            "glucose 330 every day this week",
        ],
        Disposition::Urgent,
    );
    assert_all(
        &[
            "my husband and I are both dizzy with headaches and the boiler was serviced yesterday",
            "azúcar 520 y no dejo de vomitar, me duele el estómago",
            "6 weeks pregnant, pain in my right lower belly and I nearly passed out",
            "on chemotherapy for breast cancer, fever of 38.3 tonight",
            "feels like someone is ripping my back open, started suddenly",
            "it's like a brick is sitting on my chest when I climb stairs",
            "mi abuelo se quemó la espalda, toda la espalda, y la piel se ve blanca",
            "mi hija agarró unas pills del bolso y ahora está muy dormida",
        ],
        Disposition::Emergency,
    );
    assert_all(
        &[
            "INR 2.4 today, same warfarin dose?",
            "my dad has heart failure, please renew his furosemide",
            "we turned the heat on last night, how do I change the furnace filter?",
            "I have chemo next week, any tips for the nausea?",
        ],
        Disposition::Routine,
    );
}

/// The classes of phrasing the blind-set review added, checked on sentences
/// written for this test (not taken from any evaluation set).
#[test]
fn phrasing_classes_from_the_blind_set_review() {
    assert_all(
        &[
            "glucose 320s all week, peeing constantly",
            "BS 350 to 420 since tuesday",
            "on lithium, hands trembling and walking unsteady since the weekend",
            "fever 38.5 and I'm on humira",
            "temp 101 on azathioprine for crohns",
            "bp 165/102 at home no symptoms",
            "12 wk preg, some spotting today",
            "estoy de 7 semanas y manché rosado",
            "the dog bit my son's finger and now it's red and puffy",
            "mi nieta se cayó y tiene el codo hinchado y doblado",
            "migraine for 4 days, imitrex not working",
            "I don't have a plan but I keep thinking about dying",
        ],
        Disposition::Urgent,
    );
    assert_all(
        &[
            "left the charcoal grill inside the garage to stay warm and now I'm dizzy",
            "she can only get two words out between breaths",
            "I went to the ER for chest pain, trop neg, but it's still hurting",
            "my albuterol isn't doing anything and I'm wheezing",
            "T1 diabetic, ketones moderate, vomiting since noon",
            "sugar 480 and throwing up, breathing really fast",
            "tonight is the night, goodbye everyone",
            "I know exactly how I'd do it and I think they'd be better off without me",
        ],
        Disposition::Emergency,
    );
    assert_all(
        &[
            "sugar 310 after pizza, otherwise fine",
            "bp 150/100 this morning, no symptoms",
            "burned my fingertip on the stove, small red spot, no blister",
            "My dad was admitted for a stroke last week, can you send his meds list?",
            "seen in the ED for chest pain last month, dx costochondritis, all good now",
            "My migraine meds aren't working as well, can we try another one?",
            "my daughter's eyes are goopy in the morning, no fever",
        ],
        Disposition::Routine,
    );
    // A figure of speech naming an emergency sign: at least urgent (fail-safe).
    assert_all(
        &["I'm having a heart attack over this bill, who can explain my statement?"],
        Disposition::Urgent,
    );
}

/// The engineers' own hand-labelled regression set (written independently of
/// dev.jsonl): every message keeps its exact disposition under the rules,
/// except routine lines the fail-safe leaves at urgent on purpose (an
/// emergency sign asked about or used as a figure of speech).
#[test]
fn regression_set_keeps_its_dispositions() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/regression.jsonl");
    let file = std::fs::File::open(path).expect("regression.jsonl exists");
    let (examples, errors) = eval::read_examples(std::io::BufReader::new(file));
    assert!(errors.is_empty(), "{errors:?}");
    let report = eval::evaluate(engine(), &examples);
    let wrong: Vec<String> = report
        .misses
        .iter()
        .filter(|m| {
            !(m.expected == Disposition::Routine
                && m.got == Disposition::Urgent
                && m.explanation
                    .contains("but an emergency sign if it is happening"))
        })
        .map(|m| {
            format!(
                "  [{}] expected {}, judged {}: {}\n      {}",
                m.id,
                m.expected.as_str(),
                m.got.as_str(),
                m.text,
                m.explanation
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} disagreement(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// False alarms matter too: routine specificity on the dev set stays ≥ 0.9.
#[test]
fn routine_specificity_on_dev_set_is_at_least_0_9() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/dev.jsonl");
    let Ok(file) = std::fs::File::open(path) else {
        return;
    };
    let (examples, _) = eval::read_examples(std::io::BufReader::new(file));
    let report = eval::evaluate(engine(), &examples);
    let spec = report.sensitivity(Disposition::Routine);
    assert!(
        spec >= 0.9,
        "routine messages kept routine: {spec:.3}\n{}",
        report.render(true)
    );
}

// ------------------------------------------------------------ red flags (EN/ES)

#[test]
fn chest_pain_in_lay_words_shorthand_typos_and_spanish_is_an_emergency() {
    assert_all(
        &[
            "I have crushing chest pain and I'm sweating",
            "my chest feels so tight, like an elephant is sitting on it",
            "chest pian since this morning",
            "78F c/o CP x2h radiating to L arm",
            "dolor de pecho desde anoche",
            "me aprieta el pecho y me falta el aire",
            "PRESSURE IN MY CHEST!!!",
            "no fever but crushing chest pain",
        ],
        Disposition::Emergency,
    );
}

#[test]
fn stroke_signs_including_resolved_ones_and_caregiver_reports_are_emergencies() {
    assert_all(
        &[
            "my mom is slurring her words",
            "his face is drooping on one side and he can't lift his left arm",
            "my face was drooping for 10 minutes yesterday but it went away",
            "mi papá de repente no puede mover el brazo derecho y habla raro",
            "sudden loss of vision in my right eye",
            "strok symptoms, her face is droopy",
        ],
        Disposition::Emergency,
    );
}

#[test]
fn other_emergencies_are_emergencies() {
    assert_all(
        &[
            "worst headache of my life, came on suddenly",
            "headache and a stiff neck and fever",
            "I can't breathe",
            "my throat is closing up after a bee sting",
            "I want to kill myself tonight, I have the pills",
            "my toddler swallowed some of grandma's pills",
            "he is having a seizure right now",
            "I'm vomiting blood",
            "black tarry stool and feeling faint",
            "calf pain and swelling, now short of breath",
            "bp 190/110 with chest pain",
            "my 7wk old has a fever of 100.8",
            "2 mo with temp 38.2C",
            "I'm 30 weeks pregnant and the baby has not moved since yesterday",
            "bleeding won't stop even with pressure",
            "fell and hit his head, he's on eliquis and now confused",
            "sudden severe pain in my testicle and I threw up",
            "new rash with blisters and sores in my mouth after starting lamotrigine",
            "my husband collapsed and won't wake up",
        ],
        Disposition::Emergency,
    );
}

#[test]
fn urgent_findings_are_urgent() {
    assert_all(
        &[
            "BP 188/108 this morning",
            "my calf is swollen and painful",
            "sometimes I wish I wasn't here",
            "blood in my stool this morning",
            "throwing up since last night and can't keep down my keppra",
            "burning when I pee and fever with back pain on one side",
            "rib pain after a fall",
            "fever of 103.5 since yesterday",
            "fever for 4 days now",
            "grandma has been more confused than usual the past couple days",
            "I fainted this morning but feel ok now",
        ],
        Disposition::Urgent,
    );
}

// ------------------------------------------------------------------- context

#[test]
fn negation_is_scoped_per_finding() {
    assert_eq!(
        judge("no chest pain, just need a refill"),
        Disposition::Routine
    );
    assert_eq!(
        call_note("pt denies CP, SOB, N/V. requests refill"),
        Disposition::Routine
    );
    assert_eq!(
        judge("niega dolor de pecho, pide cita"),
        Disposition::Routine
    );
    assert_eq!(
        judge("no fever but crushing chest pain"),
        Disposition::Emergency
    );
    assert_eq!(
        call_note("denies SOB, c/o CP since 10am"),
        Disposition::Emergency
    );
}

/// A later clause that reports the finding now ("never had one before but I
/// just had one") ends the negation: the event is current.
#[test]
fn a_later_clause_reporting_the_finding_now_cancels_its_negation() {
    for t in [
        "I've never had a seizure before but I just had one",
        "he never had a convulsion before and then this morning he had one",
        "nunca habia tenido una convulsion pero hoy tuve una",
        "I've never had chest pain like this",
        "nunca había sentido un dolor de pecho así",
    ] {
        assert_eq!(judge(t), Disposition::Emergency, "{t}");
    }
    assert_eq!(
        judge("I've never had a seizure, is it safe to start bupropion?"),
        Disposition::Routine
    );
    assert_eq!(
        judge("I don't have chest pain anymore but I had it all morning"),
        Disposition::Urgent
    );
}

#[test]
fn hypothetical_and_educational_questions_do_not_escalate_unless_symptoms_are_current() {
    // An emergency sign asked about is left at urgent by the fail-safe.
    assert_eq!(
        judge("what are the signs of a stroke?"),
        Disposition::Urgent
    );
    assert_eq!(
        judge("if my chest hurts should I call?"),
        Disposition::Urgent
    );
    assert_eq!(
        judge("how do I use an epipen? my son was just diagnosed with a peanut allergy"),
        Disposition::Routine
    );
    assert_eq!(
        judge("what are the signs of a stroke? my dad's face is drooping right now"),
        Disposition::Emergency
    );
}

#[test]
fn past_history_is_not_current_but_recurrence_is() {
    assert_eq!(
        judge("had a clot in 2019, need an eliquis refill"),
        Disposition::Routine
    );
    assert_eq!(
        call_note("hx CVA 2017, no new sx, req neuro f/u"),
        Disposition::Routine
    );
    assert!(judge("my old clot leg is swollen again").is_red_flag());
}

/// The fail-safe left a suppressed emergency sign at urgent.
fn fail_safe(j: &careline_triage::Judgement) -> bool {
    j.explanation
        .contains("but an emergency sign if it is happening")
}

#[test]
fn figurative_and_non_clinical_senses_are_ignored() {
    for t in [
        "the billing department gave me a headache",
        "can I get a copy of my chest x-ray",
        "when will my blood test results be ready?",
        "this insurance is bleeding money out of me",
        "these bills are giving me heart palpitations",
    ] {
        assert_eq!(judge(t), Disposition::Routine, "{t}");
    }
    // A figure of speech naming an emergency sign is read by a clinician
    // the same day rather than silenced (the fail-safe), and says why.
    for t in [
        "my computer had a seizure and I lost the form",
        "my landlord is giving me chest pains lol",
    ] {
        let j = engine().judge(t, &Context::default());
        assert_eq!(j.disposition, Disposition::Urgent, "{t}");
        assert!(fail_safe(&j), "{t}: {}", j.explanation);
        assert!(
            j.explanation.contains("non-clinical sense"),
            "{}",
            j.explanation
        );
    }
}

// ------------------------------------------------------------- fail-safe context

#[test]
fn fail_safe_an_emergency_sign_asked_about_is_urgent_with_the_reason_shown() {
    for t in [
        "what are the signs of a stroke?",
        "can you send me information about the warning signs of a heart attack",
        "if someone has crushing chest pain and sweating is that a heart attack",
        "que pasa si alguien tiene dolor de pecho opresivo y sudor frio",
    ] {
        let j = engine().judge(t, &Context::default());
        assert_eq!(j.disposition, Disposition::Urgent, "{t}: {}", j.explanation);
        assert!(fail_safe(&j), "{t}: {}", j.explanation);
        assert!(
            j.explanation.contains("hypothetical"),
            "the suppression is shown: {}",
            j.explanation
        );
    }
}

#[test]
fn fail_safe_an_explicit_denial_still_silences_and_the_red_flag_beside_it_still_fires() {
    assert_eq!(
        judge("no chest pain, just need a refill"),
        Disposition::Routine
    );
    assert_eq!(
        call_note("pt denies CP, SOB, facial droop. refill lisinopril"),
        Disposition::Routine
    );
    // The denial does not reach the emergency sign next to it.
    assert_eq!(
        judge("no chest pain but my face is drooping on the left"),
        Disposition::Emergency
    );
}

#[test]
fn fail_safe_history_told_as_history_stays_routine() {
    // Measured: counting told history as possibly current cost 2.2 points of
    // routine specificity on independent writers and caught no red flag.
    assert_all(
        &[
            "had a stroke 5 years ago, doing fine, need my statin refilled",
            "history of heart attack in 2019, stable, annual visit please",
        ],
        Disposition::Routine,
    );
}

#[test]
fn fail_safe_a_later_statement_that_it_is_happening_reaffirms_a_question() {
    assert_all(
        &[
            "is crushing chest pressure with a numb left arm a reason to call 911? asking because my husband has it right now",
            "what if he has chest pain and sweating? he is having it right now",
            "what are stroke signs? it's happening right now to my mom, her face is drooping",
            "que pasa si tiene la cara caida? le esta pasando ahora mismo",
        ],
        Disposition::Emergency,
    );
}

#[test]
fn fail_safe_durations_mark_current_symptoms_not_history() {
    for (t, d) in [
        (
            "a 5-day history of fever and now a stiff neck",
            Disposition::Emergency,
        ),
        (
            "3 day hx of fever, stiff neck, light hurts his eyes",
            Disposition::Emergency,
        ),
        (
            "cough started 3 weeks ago, now coughing up blood",
            Disposition::Urgent,
        ),
        (
            "tengo fiebre desde hace 3 dias y el cuello rigido",
            Disposition::Emergency,
        ),
    ] {
        assert_eq!(judge(t), d, "{t}");
    }
}

#[test]
fn resolved_symptoms_are_routine_except_red_flags_that_matter_when_gone() {
    assert_eq!(
        judge("had a bad headache Saturday, fine now"),
        Disposition::Routine
    );
    assert_eq!(
        judge("chest pain yesterday that went away"),
        Disposition::Urgent
    );
    assert_eq!(
        judge("her speech was slurred for a few minutes but it's gone now"),
        Disposition::Emergency
    );
}

#[test]
fn suppressed_findings_are_reported_with_the_reason() {
    let j = engine().judge("no chest pain, just a refill please", &Context::default());
    assert_eq!(j.disposition, Disposition::Routine);
    let s = j
        .suppressed
        .iter()
        .find(|s| s.concept == "chest_pain")
        .expect("chest pain listed as suppressed");
    assert!(s.reason.contains("negated"), "{}", s.reason);
    assert_eq!(s.text, "chest pain");
    assert!(j.explanation.contains("Ignored"), "{}", j.explanation);
}

// ------------------------------------------------------------------- numbers

#[test]
fn blood_pressure_readings_are_parsed() {
    assert_eq!(judge("bp 150/90 today"), Disposition::Routine);
    assert_eq!(
        judge("my blood pressure was 182 over 100"),
        Disposition::Urgent
    );
    assert_eq!(judge("BP 170/125"), Disposition::Urgent);
    assert_eq!(judge("188/108 and blurry vision"), Disposition::Emergency);
    assert_eq!(judge("appointment on 10/12 please"), Disposition::Routine);
}

#[test]
fn infant_ages_and_temperatures_are_parsed() {
    assert_eq!(
        judge("my 3 week old has a temp of 38.1 C"),
        Disposition::Emergency
    );
    assert_eq!(
        judge("bebé de 2 meses con fiebre de 38.5"),
        Disposition::Emergency
    );
    assert_eq!(
        judge("my 8 month old is teething, temp 99.1"),
        Disposition::Routine
    );
    assert_eq!(
        judge("fever for 7 weeks"),
        Disposition::Routine.max(judge("fever for 7 weeks"))
    );
}

// ------------------------------------------------------------ output contract

#[test]
fn evidence_offsets_point_into_the_original_text() {
    let text = "Hola 👋🏽, tengo DOLOR DE PECHO y sudoración desde las 8am";
    let j = engine().judge(text, &Context::default());
    assert_eq!(j.disposition, Disposition::Emergency);
    assert!(!j.evidence.is_empty());
    for e in &j.evidence {
        assert_eq!(&text[e.start..e.end], e.text);
    }
    assert!(j.evidence.iter().any(|e| e.text == "DOLOR DE PECHO"));
    assert_eq!(j.protocol_version, engine().version());
    assert_eq!(j.protocol_hash, engine().hash());
    assert!(j.guidance.is_some());
    assert!(j.explanation.starts_with("EMERGENCY"), "{}", j.explanation);
}

#[test]
fn judgement_round_trips_through_json() {
    let j = engine().judge("crushing chest pain", &Context::default());
    let s = serde_json::to_string(&j).unwrap();
    assert!(s.contains("\"disposition\":\"emergency\""));
    let back: careline_triage::Judgement = serde_json::from_str(&s).unwrap();
    assert_eq!(back, j);
}

#[test]
fn engine_is_shared_across_threads() {
    let e = Arc::new(Engine::embedded().unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                let t = if i % 2 == 0 {
                    "crushing chest pain"
                } else {
                    "refill please"
                };
                e.judge(t, &Context::default()).disposition
            })
        })
        .collect();
    let got: Vec<Disposition> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            Disposition::Emergency,
            Disposition::Routine,
            Disposition::Emergency,
            Disposition::Routine
        ]
    );
}

// ------------------------------------------------------------------- loading

fn embedded_with(name: &str, content: &str) -> Vec<(String, String)> {
    let mut files = Engine::embedded_sources();
    files.retain(|(n, _)| n != name);
    files.push((name.to_string(), content.to_string()));
    files
}

#[test]
fn malformed_protocol_file_is_rejected_with_file_line_and_field() {
    let bad = "[protocol]\nid = \"x\"\ntitle = \"X\"\nrationale = \"r\"\nsource = \"s\"\n\n[[protocol.rule]]\ndisposition = \"urgentish\"\nall = [\"chest_pain\"]\n";
    match Engine::from_sources(&embedded_with("adult/bad.toml", bad)) {
        Err(LoadError::Invalid {
            file,
            line,
            field,
            message,
        }) => {
            assert_eq!(file, "adult/bad.toml");
            assert_eq!(line, 8);
            assert_eq!(field, "protocol.rule.disposition");
            assert!(message.contains("urgentish"), "{message}");
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
    let unknown = "[protocol]\nid = \"x\"\ntitle = \"X\"\nrationale = \"r\"\nsource = \"s\"\n[[protocol.rule]]\ndisposition = \"urgent\"\nall = [\"no_such_concept\"]\n";
    let err = Engine::from_sources(&embedded_with("adult/bad.toml", unknown))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("adult/bad.toml:8: protocol.rule.all:"),
        "{err}"
    );
    let typo = "[protocol]\nid = \"x\"\ntitel = \"X\"\n";
    let err = Engine::from_sources(&embedded_with("adult/bad.toml", typo))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("adult/bad.toml:3") && err.contains("titel"),
        "{err}"
    );
    let syntax = "[[concept]\nid = \"x\"\n";
    let err = Engine::from_sources(&embedded_with("adult/bad.toml", syntax))
        .unwrap_err()
        .to_string();
    assert!(err.contains("adult/bad.toml:1"), "{err}");
}

#[test]
fn protocol_set_has_version_and_content_hash() {
    let e = engine();
    assert!(!e.version().is_empty());
    assert_eq!(e.hash().len(), 64);
    let changed = embedded_with("zz_extra.toml", "# a comment only\n");
    let e2 = Engine::from_sources(&changed).unwrap();
    assert_ne!(
        e2.hash(),
        e.hash(),
        "any change to the files changes the hash"
    );
    assert_eq!(e2.version(), e.version());
}

#[test]
fn load_dir_reads_a_protocol_directory() {
    let dir = std::env::temp_dir().join(format!("careline-triage-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (name, content) in Engine::embedded_sources() {
        let p = dir.join(&name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let e = Engine::load_dir(&dir).unwrap();
    assert_eq!(e.hash(), engine().hash());
    assert!(matches!(
        Engine::load_dir(&dir.join("nope")),
        Err(LoadError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_protocol_records_rationale_and_source() {
    let files = Engine::embedded_sources();
    let protocols = files
        .iter()
        .filter(|(_, c)| c.contains("[protocol]"))
        .count();
    assert!(protocols >= 25, "only {protocols} protocols");
    for (name, c) in files.iter().filter(|(_, c)| c.contains("[protocol]")) {
        assert!(c.contains("rationale") && c.contains("source"), "{name}");
    }
}

// --------------------------------------------------------------------- JSONL

#[test]
fn jsonl_judges_each_line_and_reports_malformed_lines() {
    let input = concat!(
        r#"{"id":"a","text":"crushing chest pain","channel":"portal","language":"en","extra":1}"#,
        "\n",
        "not json\n",
        "\n",
        r#"{"id":7,"text":"pt denies CP","channel":"call_note"}"#,
        "\n",
        r#"{"text":"no id here"}"#,
        "\n",
        r#"{"id":"b"}"#,
        "\n",
    );
    let mut out = Vec::new();
    let stats = jsonl::process(engine(), input.as_bytes(), &mut out).unwrap();
    assert_eq!(stats.errors, 2);
    assert_eq!(stats.judged, 3);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["disposition"], "emergency");
    assert!(
        lines[0]["evidence"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert_eq!(lines[0]["protocol_version"], engine().version());
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].is_string());
    assert_eq!(lines[2]["id"], 7);
    assert_eq!(lines[2]["disposition"], "routine");
    assert!(
        lines[2]["suppressed"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert_eq!(lines[4]["line"], 6);
}

// ---------------------------------------------------------------- robustness

fn check_offsets(text: &str) {
    let j = engine().judge(text, &Context::default());
    for e in &j.evidence {
        assert!(text.is_char_boundary(e.start) && text.is_char_boundary(e.end));
        assert_eq!(&text[e.start..e.end], e.text);
    }
    for s in &j.suppressed {
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        assert_eq!(&text[s.start..s.end], s.text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_offsets_are_exact_on_arbitrary_text(text in "\\PC{0,300}") {
        check_offsets(&text);
    }

    #[test]
    fn never_panics_on_mixed_clinical_words_controls_and_scripts(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("chest pain".to_string()), Just("no".to_string()), Just("denies".to_string()),
                Just("188/108".to_string()), Just("7wk".to_string()), Just("101.5F".to_string()),
                Just("dolor de pecho".to_string()), Just("\u{0}".to_string()), Just("\u{301}".to_string()),
                Just("e\u{301}".to_string()), Just("😭".to_string()), Just("ǅ".to_string()), Just("İ".to_string()),
                Just("ﬁ".to_string()), Just("Ⅻ".to_string()), Just("，".to_string()), Just("?".to_string()),
                Just("n/v".to_string()), Just("c/o".to_string()), Just("soooo".to_string()), Just("x2h".to_string()),
                "[a-zA-Z0-9 ,./]{0,12}", "\\PC{0,6}",
            ],
            0..40,
        )
    ) {
        check_offsets(&parts.join(" "));
        check_offsets(&parts.concat());
    }
}

#[test]
fn huge_inputs_are_judged_in_bounded_linear_time() {
    let unit = "no chest pain but my calf is swollen and painful, denies SOB, bp 190/110, 7wk old fever 100.8 ";
    let small: String = unit.repeat(100);
    let big: String = unit.repeat(1600);
    let t = std::time::Instant::now();
    check_offsets(&small);
    let ts = t.elapsed();
    let t = std::time::Instant::now();
    check_offsets(&big);
    let tb = t.elapsed();
    // 16x the input must not cost anything like 256x (quadratic).
    assert!(
        tb < ts * 64 + std::time::Duration::from_millis(50),
        "small {ts:?} big {tb:?}"
    );
    let junk: String = "a".repeat(200_000) + &"é".repeat(10_000) + &"\u{0}".repeat(1000);
    check_offsets(&junk);
    check_offsets("");
}

// ------------------------------------------------------------- second reader

#[test]
fn second_reader_raises_paraphrase_the_rules_miss_and_names_the_words() {
    for t in [
        "my dad keeps grabbing at the middle of his chest, he's gone grey and clammy",
        "she says it will all be over soon and she has given away her things",
    ] {
        let rules = engine().judge(t, &Context::default());
        let j = full().judge(t, &Context::default());
        assert!(j.disposition > rules.disposition, "{t}: {}", j.explanation);
        let sr = j
            .second_reader
            .as_ref()
            .expect("the second reader says it raised");
        assert_eq!(sr.from, rules.disposition);
        assert_eq!(sr.to, j.disposition);
        assert!(f64::from(sr.score) >= sr.threshold);
        assert!(
            !sr.words.is_empty(),
            "{t}: names the words that weighed most"
        );
        for w in &sr.words {
            assert_eq!(
                &t[w.start..w.end],
                w.text,
                "evidence spans point into the text"
            );
        }
        assert!(
            j.explanation.contains("second reader"),
            "the explanation says so in plain words: {}",
            j.explanation
        );
        if j.disposition == Disposition::Emergency {
            assert!(j.guidance.is_some(), "emergency guidance is given");
        }
    }
}

#[test]
fn second_reader_leaves_administrative_messages_alone() {
    for t in [
        "Can I move my appointment to Friday afternoon?",
        "please send my lisinopril refill to the pharmacy on Main St",
        "what time does the clinic open on Saturdays",
        "¿me pueden mandar la factura por correo?",
    ] {
        let j = full().judge(t, &Context::default());
        assert_eq!(
            j.disposition,
            Disposition::Routine,
            "{t}: {}",
            j.explanation
        );
        assert!(j.second_reader.is_none());
    }
}

/// Every line of every labelled set: the full engine's disposition is never
/// below the rules' (the second reader only raises).
#[test]
fn second_reader_never_lowers_a_disposition_on_the_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/eval");
    let writers = careline_triage::train::read_corpus(std::path::Path::new(dir)).unwrap();
    let mut n = 0;
    for w in &writers {
        for e in &w.examples {
            let ctx = Context::default();
            let rules = engine().judge(&e.text, &ctx).disposition;
            let both = full().judge(&e.text, &ctx).disposition;
            assert!(both >= rules, "{}: lowered {rules:?} to {both:?}", e.text);
            n += 1;
        }
    }
    assert!(n >= 6000, "the corpus has its writers: {n}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Arbitrary text, and text built from clinical and everyday words: the
    /// second reader never lowers what the rules gave.
    #[test]
    fn second_reader_never_lowers_a_disposition(
        words in proptest::collection::vec(prop_oneof![
            Just("no".to_string()), Just("chest".to_string()), Just("pain".to_string()), Just("crushing".to_string()), Just("if".to_string()), Just("what".to_string()),
            Just("stroke".to_string()), Just("face".to_string()), Just("drooping".to_string()), Just("refill".to_string()), Just("please".to_string()),
            Just("baby".to_string()), Just("fever".to_string()), Just("104".to_string()), Just("not".to_string()), Just("breathing".to_string()), Just("?".to_string()),
            Just("dolor".to_string()), Just("pecho".to_string()), Just("sin".to_string()), Just("fiebre".to_string()), Just("had".to_string()), Just("years".to_string()), Just("ago".to_string()),
            "[a-z]{1,8}".prop_map(|s| s),
        ], 0..40),
    ) {
        let text = words.join(" ");
        let ctx = Context::default();
        let rules = engine().judge(&text, &ctx);
        let both = full().judge(&text, &ctx);
        prop_assert!(both.disposition >= rules.disposition, "{text}");
        prop_assert_eq!(both.second_reader.is_some(), both.disposition > rules.disposition);
    }
}

#[test]
fn second_reader_weights_are_covered_by_the_protocol_hash() {
    let files = Engine::embedded_sources();
    let base = Engine::from_sources(&files).unwrap();
    assert!(
        base.reader_settings().is_some(),
        "the embedded set has a second reader"
    );
    let changed: Vec<(String, String)> = files
        .iter()
        .map(|(n, c)| {
            if n == careline_triage::reader::WEIGHTS_FILE {
                (n.clone(), format!("{c}\n3 0.5 0.5\n"))
            } else {
                (n.clone(), c.clone())
            }
        })
        .collect();
    let other = Engine::from_sources(&changed).unwrap();
    assert_ne!(base.hash(), other.hash());
    // A broken weights file is refused with its line.
    let broken: Vec<(String, String)> = files
        .iter()
        .map(|(n, c)| {
            if n == careline_triage::reader::WEIGHTS_FILE {
                (n.clone(), format!("{c}\nzz 1 2\n"))
            } else {
                (n.clone(), c.clone())
            }
        })
        .collect();
    let e = Engine::from_sources(&broken).unwrap_err().to_string();
    assert!(e.starts_with("reader/weights.txt:"), "{e}");
    assert!(e.contains("hexadecimal"), "{e}");
}

// ------------------------------------------------------------- catalogue growth

#[test]
fn new_protocol_families_fire_on_their_signs() {
    assert_all(
        &[
            "my son's front tooth got knocked out at hockey, he's 14, I have it in milk",
            "back pain and now I can't feel toilet paper when I wipe and I wet myself without knowing",
            "on chemo and I have a fever of 100.9 and chills",
            "he takes clozapine and now has a sore throat and a fever",
            "my leg is ice cold and white and really painful since an hour",
            "haven't pooped or passed gas in 3 days, belly swollen and I'm throwing up green",
            "erection that won't go away for 5 hours and it hurts",
            "my toddler may have swallowed a button battery from the remote",
            "my 5 week old is projectile vomiting after every feed",
            "weakness started in my feet and now it's moving up to my knees",
            "my dose of sertraline went up and now I'm twitching, sweating and restless",
            "the pain under my cast keeps getting worse and my fingers are numb and pale",
            "mi hijo se trago una pila de boton",
            "gave birth 5 days ago and I'm soaking a pad every hour",
            "passing clots the size of a golf ball after delivery",
            "my wife had the baby 2 weeks ago and says she hears voices telling her the baby is evil",
            "I have a mirena and got a positive pregnancy test, some cramping on the left",
        ],
        Disposition::Emergency,
    );
    assert_all(
        &[
            "woke up this morning and suddenly can't hear out of my left ear",
            "my newborn looks yellow, she is 4 days old",
            "can't pee since this morning and my bladder feels so full",
            "condom broke last night, do I need PEP for HIV?",
            "I have a paragard iud and got a positive test this morning",
            "34 weeks and my palms and soles itch like crazy at night",
        ],
        Disposition::Urgent,
    );
    assert_all(
        &[
            "I need a refill on my clozapine",
            "my chemo nurse said to ask about the flu shot",
            "baby tooth is wiggly, when will it fall out",
            "I'm 20 weeks, can I have a pad of butter on toast",
        ],
        Disposition::Routine,
    );
}

/// An animal's symptoms are a vet's matter; the red flag of a person next
/// to the animal still fires.
#[test]
fn an_animals_symptoms_are_silenced_and_a_persons_beside_them_still_fire() {
    for t in [
        "my cat had a seizure this morning, is there a vet you recommend",
        "mi perro tuvo una convulsion anoche",
    ] {
        let j = engine().judge(t, &Context::default());
        assert_eq!(
            j.disposition,
            Disposition::Routine,
            "{t}: {}",
            j.explanation
        );
        assert!(
            j.explanation.contains("about an animal"),
            "{}",
            j.explanation
        );
    }
    assert_all(
        &[
            "my dog bit me on the hand and it's bleeding a lot and won't stop",
            "I was walking my dog and got crushing chest pain and now I'm sweating",
            "my dog is fine but I have crushing chest pain",
            "mi perro me mordio y no para de sangrar",
        ],
        Disposition::Emergency,
    );
}

/// "No entiendo" (I don't understand) is not a speech problem; a caregiver
/// who cannot understand a parent's speech still is.
#[test]
fn not_understanding_a_bill_is_not_a_speech_problem_but_slurred_speech_still_fires() {
    assert_all(
        &[
            "no entiendo la factura que me llego",
            "no entiendo nada de la factura",
        ],
        Disposition::Routine,
    );
    assert_all(
        &[
            "mi papa habla raro y no se le entiende nada",
            "de repente no le entiendo lo que dice a mi mama",
        ],
        Disposition::Emergency,
    );
}

#[test]
fn clinical_content_reads_symptoms_in_either_language_and_not_administration() {
    for t in [
        "Can I move my appointment to Friday afternoon?",
        "what time does the clinic open on Saturdays",
        "update my address please, I moved to 5 Oak St",
        "¿me pueden mandar la factura por correo?",
    ] {
        let j = full().judge(t, &Context::default());
        assert!(
            j.clinical_content.is_none(),
            "{t}: {:?}",
            j.clinical_content
        );
    }
    for t in [
        "my knee has been aching since I started running",
        "me duele la garganta desde ayer",
        "no chest pain, just wondering about my stress test results",
        "rash on my arm for two days, itchy",
    ] {
        let j = full().judge(t, &Context::default());
        let c = j
            .clinical_content
            .unwrap_or_else(|| panic!("{t}: not read as clinical"));
        assert!(!c.words.is_empty(), "{t}: names its words");
    }
    // Every red flag is clinical.
    let j = full().judge(
        "crushing chest pain and my left arm is numb",
        &Context::default(),
    );
    assert!(j.clinical_content.is_some());
}

/// The review net under the engine: every line of the labelled corpus that
/// a writer called urgent or emergency and the engine judged routine still
/// reads as clinical, so a clinician reads it the same day. (Held-out
/// figures, with the share of routine traffic it adds, are in the README.)
#[test]
fn review_net_reads_every_red_flag_the_engine_judges_routine_as_clinical() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/eval");
    let writers = careline_triage::train::read_corpus(std::path::Path::new(dir)).unwrap();
    let mut missed = Vec::new();
    let mut routine_red_flags = 0;
    for w in &writers {
        for e in &w.examples {
            if !e.expected.is_red_flag() {
                continue;
            }
            let j = full().judge(&e.text, &Context::default());
            if j.disposition == Disposition::Routine {
                routine_red_flags += 1;
                if j.clinical_content.is_none() {
                    missed.push(e.text.clone());
                }
            }
        }
    }
    assert!(
        missed.is_empty(),
        "{} of {routine_red_flags} not read as clinical: {missed:#?}",
        missed.len()
    );
}

/// The second reader raises only on words that weigh towards a red flag:
/// a message with none (an address, a phone number, a name) is never raised
/// by the model's prior alone.
#[test]
fn second_reader_never_raises_on_its_prior_alone() {
    for t in [
        "my neighbour's phone is 555-0199",
        "ok",
        "Maria Gonzalez 03/14/1962",
        "????",
    ] {
        let j = full().judge(t, &Context::default());
        assert_eq!(
            j.disposition,
            Disposition::Routine,
            "{t}: {}",
            j.explanation
        );
        assert!(j.second_reader.is_none(), "{t}");
    }
    // The red flag beside such words still fires.
    for t in [
        "my neighbour's phone is 555-0199, and I have crushing chest pain going down my arm",
        "Maria Gonzalez 03/14/1962 - my face is drooping and I can't lift my arm",
    ] {
        let j = full().judge(t, &Context::default());
        assert_eq!(
            j.disposition,
            Disposition::Emergency,
            "{t}: {}",
            j.explanation
        );
    }
}

/// The catalogue: every protocol fires on at least one labelled line of the
/// corpus, and `protocols/CATALOGUE.md` is what the set and corpus say now
/// (regenerate with `careline triage --catalogue crates/triage/eval`).
#[test]
fn every_protocol_has_evaluation_lines_and_the_catalogue_page_is_current() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/eval");
    let writers = careline_triage::train::read_corpus(std::path::Path::new(dir)).unwrap();
    let cover = careline_triage::train::coverage(full(), &writers);
    let uncovered: Vec<&String> = cover
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| id)
        .collect();
    assert!(
        uncovered.is_empty(),
        "protocols with no evaluation line: {uncovered:?}"
    );
    for p in full().catalogue() {
        assert!(
            !p.system.is_empty() && !p.population.is_empty(),
            "{}: system and population",
            p.id
        );
        assert!(!p.source.is_empty(), "{}: source", p.id);
    }
    let page = careline_triage::train::catalogue_page(full(), &writers, "crates/triage/eval");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../protocols/CATALOGUE.md");
    let stored = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        stored == page,
        "protocols/CATALOGUE.md is stale: regenerate it with `careline triage --catalogue crates/triage/eval > protocols/CATALOGUE.md`"
    );
}

/// A temperature is read as one when the route it was taken by follows it
/// ("38.0 rectal", "101 orally", "38.1 on the thermometer"), in either
/// language; a number with a route word and no fever range is not a fever.
#[test]
fn a_temperature_told_by_its_route_is_a_temperature() {
    assert_all(
        &[
            "My 2 month old has had 38.0 rectal twice today, she's eating fine",
            "my baby 3 weeks, she have 38.1 on thermometer in bottom",
            "mi bebe de 6 semanas tiene 38.2 rectal",
            "6 week old, 100.6 rectally an hour ago",
        ],
        Disposition::Emergency,
    );
    let j = engine().judge(
        "my 2 month old had 37.2 rectal, is that normal?",
        &Context::default(),
    );
    assert!(
        !j.protocols.iter().any(|p| p.id == "infant_fever"),
        "37.2 is not a fever: {}",
        j.explanation
    );
}
