//! Numbers with meaning: blood-pressure readings ("188/108", "bp 190 over
//! 110", "bp in the 190s"), temperatures ("101.5F", "39.2 C", "102 degrees",
//! "fiebre de 39"), ages ("78F", "78 yo", "7wk", "2 mo old", "bebé de 3
//! semanas"), durations ("x4d", "for 3 days"), oxygen saturation, heart
//! rate and blood sugar. Each becomes a finding of a built-in concept
//! (`bp_crisis`, `temp_fever`, `age_under_3mo`, …) that protocol rules use
//! like any other concept, and that context rules can still negate or date.

use crate::matcher::Finding;
use crate::normalize::{Kind, Normalized};
use std::collections::HashMap;

const BP_KW: &[&str] = &[
    "bp",
    "pressure",
    "presion",
    "ta",
    "pa",
    "sbp",
    "systolic",
    "sistolica",
    "reading",
    "readings",
];
const TEMP_KW: &[&str] = &[
    "thermometer",
    "termometro",
    "temp",
    "temperature",
    "fever",
    "febrile",
    "fiebre",
    "temperatura",
    "tmax",
    "t",
    "calentura",
    "temps",
    "febril",
];
const SPO2_KW: &[&str] = &[
    "o2",
    "spo2",
    "sat",
    "sats",
    "saturation",
    "oxygen",
    "ox",
    "saturacion",
    "oxigeno",
    "saturating",
    "pulseox",
];
const HR_KW: &[&str] = &[
    "hr",
    "pulse",
    "heart rate",
    "rate",
    "pulso",
    "fc",
    "frecuencia",
    "heartrate",
];
const GLU_KW: &[&str] = &[
    "sugar",
    "sugars",
    "glucose",
    "bs",
    "bg",
    "cbg",
    "glucosa",
    "azucar",
    "glicemia",
    "glucemia",
    "fsbs",
    "fsbg",
    "glucometer",
];
const INR_KW: &[&str] = &["inr", "ptinr", "coag"];
const YEAR_UNITS: &[&str] = &[
    "yo", "yr", "yrs", "y", "year", "years", "ano", "anos", "yoa", "a", "yr old", "ys",
];
const SEX_UNITS: &[&str] = &[
    "f", "m", "female", "male", "woman", "man", "wf", "wm", "bf", "bm", "hf", "hm",
];
const WEEK_UNITS: &[&str] = &[
    "wk", "wks", "week", "weeks", "w", "semana", "semanas", "wko", "wo",
];
const MONTH_UNITS: &[&str] = &[
    "mo", "mos", "month", "months", "mes", "meses", "mth", "mths", "m",
];
const DAY_UNITS: &[&str] = &["d", "day", "days", "dia", "dias", "dy", "dys"];
const HOUR_UNITS: &[&str] = &["h", "hr", "hrs", "hour", "hours", "hora", "horas"];
const AGE_AFTER: &[&str] = &[
    "old",
    "o",
    "infant",
    "baby",
    "boy",
    "girl",
    "bb",
    "de",
    "newborn",
    "f",
    "m",
    "male",
    "female",
    "son",
    "daughter",
    "nacido",
    "nacida",
    "with",
    "w",
    "has",
    "complains",
    "patient",
    "pt",
    "is",
    "c",
    "presents",
];
const AGE_BEFORE: &[&str] = &[
    "de",
    "tiene",
    "is",
    "pt",
    "patient",
    "infant",
    "baby",
    "bebe",
    "son",
    "daughter",
    "child",
    "aged",
    "age",
    "edad",
    "nino",
    "nina",
    "hijo",
    "hija",
    "girl",
    "boy",
    "grandson",
    "granddaughter",
    "nieto",
    "nieta",
    "newborn",
    "only",
    "just",
];
const RELATIONS: &[&str] = &[
    "am",
    "turned",
    "turning",
    "father",
    "mother",
    "husband",
    "wife",
    "grandmother",
    "grandfather",
    "patient",
    "aunt",
    "uncle",
    "neighbor",
    "madre",
    "padre",
    "abuela",
    "abuelo",
    "esposo",
    "esposa",
    "senora",
    "senor",
    "tia",
    "tio",
    "pt",
    "male",
    "female",
    "man",
    "woman",
    "aged",
    "age",
    "edad",
];
const TEMP_AFTER: &[&str] = &[
    "temperatura",
    "temperature",
    "temp",
    "fever",
    "fiebre",
    "calentura",
    "febrile",
    "thermometer",
    "termometro",
    // The route a reading was taken by ("38.0 rectal", "101 orally").
    "rectal",
    "rectally",
    "rectalmente",
    "oral",
    "orally",
    "axillary",
    "axilar",
    "armpit",
    "underarm",
    "tympanic",
    "temporal",
];
const TEMP_F: &[&str] = &["f", "fahrenheit", "farenheit"];
const TEMP_C: &[&str] = &["c", "celsius", "centigrade", "centigrados", "centigrado"];
const DEG: &[&str] = &["deg", "degree", "degrees", "grados", "grado", "degres"];

fn num(n: &Normalized, i: usize) -> Option<f32> {
    match n.toks.get(i)?.kind {
        Kind::Num(v) if v.is_finite() => Some(v),
        _ => None,
    }
}

fn word_is(n: &Normalized, i: usize, set: &[&str]) -> bool {
    n.toks.get(i).is_some_and(|t| t.kind == Kind::Word) && set.contains(&n.word(i))
}

/// Index of a keyword from `set` within `max` tokens before `i`, in the same sentence.
fn kw_before(n: &Normalized, i: usize, set: &[&str], max: usize) -> Option<usize> {
    let mut j = i;
    let mut seen = 0;
    while j > 0 && seen < max {
        j -= 1;
        let t = n.toks.get(j)?;
        if t.is_boundary() {
            return None;
        }
        if t.kind == Kind::Word && set.contains(&n.word(j)) {
            return Some(j);
        }
        if let Kind::Num(_) = t.kind {
            return None;
        }
        seen += 1;
    }
    None
}

/// Where the range ending at number `i` starts: "380-420" (the dash is
/// dropped, so two numbers in a row), "300 to 350", "300 a 350".
fn range_start(n: &Normalized, i: usize) -> usize {
    let Some(p) = i.checked_sub(1) else {
        return i;
    };
    if num(n, p).is_some() {
        return p;
    }
    if word_is(n, p, &["to", "a", "y"])
        && let Some(q) = p.checked_sub(1)
        && num(n, q).is_some()
    {
        return q;
    }
    i
}

struct Emitter<'a> {
    ids: &'a HashMap<&'static str, u16>,
    out: &'a mut Vec<Finding>,
}

impl Emitter<'_> {
    fn emit(&mut self, name: &str, ts: usize, te: usize) {
        if let Some(&c) = self.ids.get(name) {
            self.out.push(Finding {
                concept: c,
                ts: ts as u32,
                te: te.max(ts) as u32,
                fuzzy: false,
            });
        }
    }
}

/// Scan the token stream for meaningful numbers.
pub(crate) fn scan(n: &Normalized, ids: &HashMap<&'static str, u16>, out: &mut Vec<Finding>) {
    let mut e = Emitter { ids, out };
    let len = n.toks.len();
    let mut i = 0usize;
    while i < len {
        let Some(v) = num(n, i) else {
            i += 1;
            continue;
        };
        // Blood pressure "188/108", "190 over 110", "180s over 110s".
        let plural =
            usize::from(word_is(n, i + 1, &["s"]) && n.toks.get(i + 1).is_some_and(|t| t.glued));
        let sep = i + 1 + plural;
        let slash = n.toks.get(sep).is_some_and(|t| t.kind == Kind::Slash);
        let over = word_is(n, sep, &["over", "sobre"]);
        if let (true, Some(d)) = (slash || over, num(n, sep + 1)) {
            let end = sep + 1 + usize::from(word_is(n, sep + 2, &["s"]));
            let bp_kw = kw_before(n, i, BP_KW, 4);
            let date_like = n.toks.get(sep + 2).is_some_and(|t| t.kind == Kind::Slash);
            let plausible = (60.0..=300.0).contains(&v) && (30.0..=200.0).contains(&d) && v > d;
            if plausible
                && !date_like
                && (bp_kw.is_some() || (slash && v >= 70.0) || (over && v >= 90.0 && d >= 50.0))
            {
                let ts = bp_kw.unwrap_or(i);
                if v >= 180.0 || d >= 120.0 {
                    e.emit("bp_crisis", ts, end);
                }
                if v >= 160.0 || d >= 100.0 {
                    e.emit("bp_high", ts, end);
                }
                if v >= 160.0 && d >= 100.0 {
                    e.emit("bp_severe", ts, end);
                }
                if v < 90.0 {
                    e.emit("bp_low", ts, end);
                }
                i = end + 1;
                continue;
            }
            if date_like {
                i = sep + 3;
                continue;
            }
        }
        // Systolic alone after a BP keyword: "bp 190", "bp in the 190s".
        if let Some(k) = kw_before(n, i, BP_KW, 3)
            && (60.0..=300.0).contains(&v)
            && !slash
        {
            let te = if word_is(n, i + 1, &["s"]) { i + 1 } else { i };
            if v >= 180.0 {
                e.emit("bp_crisis", k, te);
            }
            if v >= 160.0 {
                e.emit("bp_high", k, te);
            }
            if v < 90.0 {
                e.emit("bp_low", k, te);
            }
            i = te + 1;
            continue;
        }
        // Temperature.
        let mut j = i + 1;
        let has_deg = word_is(n, j, DEG);
        if has_deg {
            j += 1;
        }
        let unit_f = word_is(n, j, TEMP_F);
        let unit_c = word_is(n, j, TEMP_C);
        let temp_after = word_is(n, i + 1, TEMP_AFTER)
            || (word_is(n, i + 1, &["de", "of", "on", "en", "by", "por", "under"])
                && word_is(n, i + 2, TEMP_AFTER));
        let temp_kw = kw_before(n, i, TEMP_KW, 4).or(temp_after.then_some(i));
        let decimal = v.fract() != 0.0;
        let f_glued_age = unit_f && !has_deg && v < 94.0 && !decimal;
        let scale_f = unit_f || (!unit_c && (94.0..=110.0).contains(&v));
        let scale_c = unit_c || (!unit_f && (34.0..=43.5).contains(&v));
        let explicit_temp = has_deg
            || ((unit_f || unit_c)
                && (decimal || (94.0..=110.0).contains(&v) || (34.0..=43.5).contains(&v)));
        if !f_glued_age && (explicit_temp || temp_kw.is_some()) && (scale_f || scale_c) {
            let vf = if scale_f && (90.0..=115.0).contains(&v) {
                Some(v)
            } else if scale_c && (30.0..=45.0).contains(&v) {
                Some(v * 9.0 / 5.0 + 32.0)
            } else {
                None
            };
            if let Some(f) = vf {
                let ts = temp_kw.unwrap_or(i);
                let te = if unit_f || unit_c {
                    j
                } else if has_deg {
                    i + 1
                } else {
                    i
                };
                if f >= 100.35 {
                    e.emit("temp_fever", ts, te);
                }
                if f >= 102.9 {
                    e.emit("temp_high", ts, te);
                }
                if f >= 104.9 {
                    e.emit("temp_very_high", ts, te);
                }
                if f >= 102.15 {
                    e.emit("temp_39", ts, te);
                }
                if f < 96.0 {
                    e.emit("temp_low", ts, te);
                }
                i = te + 1;
                continue;
            }
        }
        // Age in years: "78F", "78 yo", "78 year old", "tiene 80 años".
        let glued1 = n.toks.get(i + 1).is_some_and(|t| t.glued);
        if v.fract() == 0.0 && v < 120.0 {
            let sex = word_is(n, i + 1, SEX_UNITS)
                && (glued1 || word_is(n, i + 1, &["female", "male", "woman", "man"]));
            let yrs = word_is(n, i + 1, YEAR_UNITS)
                && (word_is(n, i + 1, &["yo", "yoa"])
                    || (word_is(n, i + 1, &["a", "y"]) && glued1)
                    || word_is(n, i + 2, &["old", "o", "de"])
                    || word_is(
                        n,
                        i.wrapping_sub(1),
                        &["tiene", "de", "con", "aged", "age", "edad"],
                    )
                    || (word_is(n, i + 1, &["y"]) && word_is(n, i + 2, &["o"])));
            let rel_age = (40.0..=110.0).contains(&v)
                && word_is(n, i.wrapping_sub(1), RELATIONS)
                && !word_is(n, i + 1, &["/"]);
            if (sex && (!word_is(n, i + 1, &["m"]) || v > 24.0)) || yrs || rel_age {
                if v >= 65.0 {
                    e.emit("age_65_plus", i, i + 1);
                }
                if v < 2.0 && yrs {
                    e.emit("age_under_2y", i, i + 1);
                }
                if v < 18.0 {
                    e.emit("age_under_18", i, i + 1);
                }
                i += 2;
                continue;
            }
        }
        // Age in weeks/months/days, or a duration.
        let unit_days = if word_is(n, i + 1, WEEK_UNITS) {
            Some(v * 7.0)
        } else if word_is(n, i + 1, MONTH_UNITS) {
            Some(v * 30.0)
        } else if word_is(n, i + 1, DAY_UNITS) {
            Some(v)
        } else if word_is(n, i + 1, HOUR_UNITS) {
            Some(v / 24.0)
        } else {
            None
        };
        if let Some(days) = unit_days {
            let is_hours = word_is(n, i + 1, HOUR_UNITS);
            let is_day_unit = word_is(n, i + 1, DAY_UNITS);
            let dur_marker = word_is(
                n,
                i.wrapping_sub(1),
                &[
                    "x", "for", "since", "hace", "durante", "past", "last", "over", "about",
                    "been", "around", "almost", "nearly",
                ],
            );
            let gestational = word_is(
                n,
                i + 2,
                &[
                    "pregnant",
                    "gestation",
                    "along",
                    "embarazada",
                    "pp",
                    "postpartum",
                    "post",
                    "postop",
                    "po",
                    "after",
                    "ago",
                    "since",
                    "out",
                ],
            ) || (word_is(n, i + 2, &["de"])
                && word_is(n, i + 3, &["embarazo", "gestacion", "embarazada"]));
            let age = !is_hours
                && !dur_marker
                && !gestational
                && ((word_is(n, i + 2, AGE_AFTER)
                    && (!is_day_unit
                        || word_is(n, i + 2, &["old", "o", "de", "newborn", "nacido", "nacida"])))
                    || word_is(n, i.wrapping_sub(1), AGE_BEFORE)
                    || (i == 0 && !word_is(n, i + 1, DAY_UNITS))
                    || n.toks
                        .get(i.wrapping_sub(1))
                        .is_some_and(|t| t.is_boundary() || t.kind == Kind::Comma)
                        && !word_is(n, i + 1, DAY_UNITS)
                    || (glued1 && word_is(n, i + 2, SEX_UNITS)));
            if age {
                e.emit("age_under_18", i, i + 1);
                if days < 90.0 {
                    e.emit("age_under_3mo", i, i + 1);
                }
                if days <= 730.0 {
                    e.emit("age_under_2y", i, i + 1);
                }
            } else if days >= 3.0 {
                let ts = if word_is(n, i.wrapping_sub(1), &["x"]) {
                    i - 1
                } else {
                    i
                };
                e.emit("duration_3d_plus", ts, i + 1);
            }
            i += 2;
            continue;
        }
        // Oxygen saturation, heart rate, blood sugar. The upper end of a
        // range ("BG 380-420", "sats 88 to 90") shares the keyword of its
        // lower end.
        let kw_from = range_start(n, i);
        if let Some(k) = kw_before(n, kw_from, SPO2_KW, 4)
            && (50.0..=100.0).contains(&v)
        {
            if v <= 92.0 {
                e.emit("spo2_low", k, i);
            }
            i += 1;
            continue;
        }
        if let Some(k) = kw_before(n, kw_from, HR_KW, 3) {
            if (130.0..=250.0).contains(&v) {
                e.emit("hr_high", k, i);
            } else if (15.0..40.0).contains(&v) {
                e.emit("hr_low", k, i);
            }
        }
        // INR on a vitamin K antagonist: 5 or more needs a dose decision
        // today even without bleeding (values above 20 are not INRs).
        if let Some(k) = kw_before(n, kw_from, INR_KW, 4)
            && (5.0..=20.0).contains(&v)
        {
            e.emit("inr_high", k, i);
            i += 1;
            continue;
        }
        if let Some(k) = kw_before(n, kw_from, GLU_KW, 4) {
            if (300.0..=1500.0).contains(&v) {
                e.emit("glucose_300", k, i);
            }
            if (400.0..=1500.0).contains(&v) {
                e.emit("glucose_high", k, i);
            } else if (15.0..=60.0).contains(&v) && v.fract() == 0.0 {
                e.emit("glucose_low", k, i);
            }
        }
        i += 1;
    }
}
