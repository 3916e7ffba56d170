#!/usr/bin/env python3
"""medspaCy side of bench/triage-vs-medspacy.sh.

Runs medspaCy's default pipeline (medspacy.load(): PyRuSH sentence splitter,
TargetMatcher, ConText) with a TargetRule list of telephone-triage red-flag
concepts (English and Spanish, ~150 phrases taken from public red-flag
lists) and a handful of extra Spanish ConText modifiers.

A message counts as *flagged* when at least one red-flag target is not
negated (`flagged_nonneg`, the headline count) and, stricter, when at least
one target is also not hypothetical, historical or about family history
(`flagged_strict`).

Sub-commands:
  bench --corpus FILE [--out FILE]   throughput over a JSONL corpus
  eval  --dev FILE                   recall/false-positive rates on dev.jsonl
Both print one JSON object on stdout.
"""

import argparse
import json
import sys
import time

# --------------------------------------------------------------- red flags
# Public adult/paediatric telephone-triage red flags (chest pain, breathing,
# stroke/FAST, thunderclap headache, anaphylaxis, suicide/overdose, seizure,
# syncope, GI bleeding, DVT/PE, pregnancy, infant fever, sepsis, bleeding,
# head injury, testicular torsion, SJS, dehydration, confusion).
RED_FLAGS_EN = {
    "CHEST_PAIN": [
        "chest pain", "chest pains", "chest pressure", "chest tightness", "tight chest",
        "chest is tight", "chest feels tight", "crushing chest", "pressure in my chest",
        "pain in my chest", "chest hurts", "chest discomfort", "heaviness in chest",
        "elephant sitting on my chest", "squeezing in my chest", "cp", "heart attack",
        "pain radiating to left arm", "left arm pain", "jaw pain",
    ],
    "BREATHING": [
        "shortness of breath", "short of breath", "sob", "can't breathe", "cant breathe",
        "cannot breathe", "can't breath", "cant breath", "difficulty breathing",
        "trouble breathing", "hard to breathe", "can't catch my breath", "gasping",
        "lips blue", "lips look blue", "turning blue", "wheezing", "struggling to breathe",
    ],
    "STROKE": [
        "slurred speech", "slurring", "slurring her words", "slurring his words",
        "facial droop", "face drooping", "face is drooping", "droopy face", "face looks droopy",
        "one side of face", "arm weakness", "weakness on one side", "numbness on one side",
        "can't move his arm", "can't move her arm", "can't lift", "trouble speaking",
        "can't talk", "word-finding difficulty", "stroke", "tia", "mini stroke",
        "sudden vision loss", "double vision", "lost vision",
    ],
    "HEADACHE": [
        "worst headache", "worst headache of my life", "thunderclap headache",
        "sudden severe headache", "explosive headache", "severe headache", "stiff neck",
    ],
    "BP": ["blood pressure spike", "hypertensive crisis", "bp very high", "blurred vision"],
    "ANAPHYLAXIS": [
        "throat closing", "throat is closing", "throat tight", "throat tightness",
        "throat feels tight", "tongue swelling", "lips swelling", "swelling of the face",
        "anaphylaxis", "allergic reaction", "hives everywhere", "epipen",
    ],
    "SUICIDE": [
        "suicidal", "suicide", "kill myself", "end my life", "want to die", "take my life",
        "better off without me", "hurt myself", "overdose", "overdosed",
        "took too many", "took all my",
    ],
    "POISONING": ["swallowed pills", "ate some pills", "poisoning", "poison", "drank bleach"],
    "SEIZURE": ["seizure", "seizures", "seizing", "convulsion", "convulsions"],
    "SYNCOPE": ["passed out", "fainted", "fainting", "unconscious", "unresponsive",
                "hard to wake", "syncope", "blacked out"],
    "GI_BLEED": [
        "vomiting blood", "throwing up blood", "coffee grounds", "coffee ground emesis",
        "blood in stool", "blood in my stool", "bloody stool", "black stool",
        "black tarry stool", "tarry stool", "melena", "hematemesis", "rectal bleeding",
        "brbpr",
    ],
    "DVT_PE": ["calf swelling", "calf pain", "swollen calf", "leg swelling", "blood clot",
               "clot", "dvt", "pulmonary embolism", "coughing up blood"],
    "PREGNANCY": ["pregnant and bleeding", "vaginal bleeding", "baby not moving",
                  "decreased fetal movement", "reduced fetal movement", "seeing spots"],
    "FEVER_INFANT": ["newborn fever", "infant fever", "baby has a fever", "fever"],
    "SEPSIS": ["sepsis", "rigors", "shaking chills", "purple rash", "rash that doesn't fade",
               "confused", "confusion"],
    "BLEEDING": ["won't stop bleeding", "bleeding heavily", "severe bleeding",
                 "heavy bleeding", "soaking through"],
    "HEAD_INJURY": ["hit my head", "hit her head", "hit his head", "head injury",
                    "head strike"],
    "OTHER": ["testicle pain", "testicular pain", "pain in my testicle", "mouth sores",
              "blisters in mouth", "skin peeling", "no wet diaper", "not peeing",
              "rib pain", "ribs", "abdominal pain severe", "rigid abdomen"],
}
RED_FLAGS_ES = {
    "CHEST_PAIN": ["dolor de pecho", "dolor en el pecho", "dolor toracico", "dolor torácico",
                   "presión en el pecho", "presion en el pecho", "opresión en el pecho",
                   "me duele el pecho", "infarto"],
    "BREATHING": ["me falta el aire", "falta de aire", "no puedo respirar", "dificultad para respirar",
                  "labios morados", "me ahogo", "disnea"],
    "STROKE": ["no puede hablar", "habla raro", "cara caída", "cara caida", "boca torcida",
               "no puede mover el brazo", "derrame cerebral", "embolia", "se me duerme la cara"],
    "HEADACHE": ["peor dolor de cabeza", "dolor de cabeza muy fuerte", "cuello rígido", "cuello rigido"],
    "ANAPHYLAXIS": ["se me cierra la garganta", "se me está cerrando la garganta",
                    "se me esta cerrando la garganta", "garganta cerrada", "lengua hinchada",
                    "labios hinchados"],
    "SUICIDE": ["quitarme la vida", "matarme", "suicidarme", "no quiero vivir",
                "no quiero seguir viviendo", "sobredosis"],
    "SEIZURE": ["convulsión", "convulsion", "convulsionando", "ataque epiléptico"],
    "SYNCOPE": ["me desmayé", "me desmaye", "desmayo", "inconsciente", "no reacciona"],
    "GI_BLEED": ["vomitando sangre", "vómito con sangre", "sangre en las heces",
                 "sangre en el excremento", "heces negras", "popó negra"],
    "DVT_PE": ["pantorrilla hinchada", "pierna hinchada", "coágulo", "coagulo", "trombosis"],
    "PREGNANCY": ["embarazada y sangrando", "sangrado vaginal", "el bebé no se mueve",
                  "el bebe no se mueve", "veo lucecitas"],
    "FEVER_INFANT": ["fiebre", "calentura"],
    "OTHER": ["confundida", "confundido", "no para de sangrar", "dolor en el testículo",
              "dolor en un testículo", "llagas en la boca", "ampollas"],
}


def red_flag_rules():
    from medspacy.ner import TargetRule
    rules = []
    for table in (RED_FLAGS_EN, RED_FLAGS_ES):
        for cat, phrases in table.items():
            for p in phrases:
                rules.append(TargetRule(p, cat))
    # Call-note abbreviations that collide with ordinary words when lower-cased
    # ("si" is Spanish for "if"): match them case-sensitively.
    for abbr, cat in (("SI", "SUICIDE"), ("OD", "SUICIDE"), ("SZ", "SEIZURE"),
                      ("HA", "HEADACHE"), ("SOB", "BREATHING"), ("CP", "CHEST_PAIN")):
        rules.append(TargetRule(abbr, cat, pattern=[{"ORTH": abbr}]))
    return rules


def spanish_context_rules():
    from medspacy.context import ConTextRule
    neg = ["no", "niega", "sin", "no tengo", "no hay", "nunca"]
    hyp = ["si me", "si tengo", "cuáles son las señales", "cuales son las señales", "en caso de"]
    hist = ["tuve", "hace años", "en 2018", "en 2019", "en 2020"]
    fam = ["mi papá tuvo", "mi mamá tuvo", "mi papa tuvo", "mi mama tuvo", "antecedentes familiares"]
    rules = [ConTextRule(w, "NEGATED_EXISTENCE", direction="FORWARD") for w in neg]
    rules += [ConTextRule(w, "HYPOTHETICAL", direction="FORWARD") for w in hyp]
    rules += [ConTextRule(w, "HISTORICAL", direction="FORWARD") for w in hist]
    rules += [ConTextRule(w, "FAMILY", direction="FORWARD") for w in fam]
    return rules


def load(sentencizer="pyrush"):
    # PyRuSH (the default sentence splitter) logs every token at DEBUG through
    # loguru's default stderr sink; silence it so we time NLP, not logging.
    try:
        from loguru import logger
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    except ImportError:
        pass
    import medspacy
    if sentencizer == "pyrush":
        nlp = medspacy.load()                      # the default pipeline
    else:
        # Variant: spaCy's rule-based sentencizer instead of PyRuSH (pure-Python,
        # the bulk of the default pipeline's time); target matcher and ConText as default.
        nlp = medspacy.load(medspacy_enable=["medspacy_tokenizer", "medspacy_target_matcher",
                                             "medspacy_context"])
        nlp.add_pipe("sentencizer", first=True)
    nlp.get_pipe("medspacy_target_matcher").add(red_flag_rules())
    nlp.get_pipe("medspacy_context").add(spanish_context_rules())
    return nlp


def judge(doc):
    targets = list(doc.ents)
    nonneg = [e for e in targets if not e._.is_negated]
    strict = [e for e in nonneg
              if not (e._.is_hypothetical or e._.is_historical or e._.is_family)]
    return nonneg, strict


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cmd_bench(args):
    t0 = time.perf_counter()
    nlp = load(args.sentencizer)
    load_s = time.perf_counter() - t0
    import medspacy
    import spacy

    recs = read_jsonl(args.corpus)
    texts = [r["text"] for r in recs]
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    n_nonneg = n_strict = 0
    t1 = time.perf_counter()
    for rec, doc in zip(recs, nlp.pipe(texts, batch_size=args.batch_size)):
        nonneg, strict = judge(doc)
        n_nonneg += bool(nonneg)
        n_strict += bool(strict)
        if out:
            out.write(json.dumps({"id": rec["id"], "flagged": bool(nonneg),
                                  "flagged_strict": bool(strict),
                                  "targets": [[e.label_, e.text] for e in nonneg]},
                                 ensure_ascii=False) + "\n")
    run_s = time.perf_counter() - t1
    if out:
        out.close()
    print(json.dumps({
        "engine": "medspacy", "medspacy": medspacy.__version__, "spacy": spacy.__version__,
        "sentencizer": args.sentencizer, "pipeline": nlp.pipe_names, "target_rules": len(red_flag_rules()),
        "messages": len(recs), "load_s": round(load_s, 3), "run_s": round(run_s, 3),
        "msgs_per_s": round(len(recs) / run_s, 1),
        "flagged_nonneg": n_nonneg, "flagged_strict": n_strict,
    }))


def cmd_eval(args):
    nlp = load(args.sentencizer)
    recs = read_jsonl(args.dev)
    stats = {}
    for rec, doc in zip(recs, nlp.pipe([r["text"] for r in recs])):
        nonneg, strict = judge(doc)
        s = stats.setdefault(rec["expected"], {"n": 0, "flagged_nonneg": 0, "flagged_strict": 0})
        s["n"] += 1
        s["flagged_nonneg"] += bool(nonneg)
        s["flagged_strict"] += bool(strict)
    red = [stats.get(k, {"n": 0, "flagged_nonneg": 0, "flagged_strict": 0})
           for k in ("emergency", "urgent")]
    n_red = sum(s["n"] for s in red)
    rout = stats.get("routine", {"n": 0, "flagged_nonneg": 0, "flagged_strict": 0})
    print(json.dumps({
        "engine": "medspacy", "sentencizer": args.sentencizer, "by_expected": stats,
        "recall_nonneg": round(sum(s["flagged_nonneg"] for s in red) / max(n_red, 1), 3),
        "recall_strict": round(sum(s["flagged_strict"] for s in red) / max(n_red, 1), 3),
        "routine_flagged_nonneg": round(rout["flagged_nonneg"] / max(rout["n"], 1), 3),
        "routine_flagged_strict": round(rout["flagged_strict"] / max(rout["n"], 1), 3),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--corpus", required=True)
    b.add_argument("--out")
    b.add_argument("--batch-size", type=int, default=256)
    e = sub.add_parser("eval")
    e.add_argument("--dev", required=True)
    for p in (b, e):
        p.add_argument("--sentencizer", choices=["pyrush", "spacy"], default="pyrush")
    args = ap.parse_args()
    {"bench": cmd_bench, "eval": cmd_eval}[args.cmd](args)


if __name__ == "__main__":
    main()
