#!/usr/bin/env python3
"""Deterministic generator for the triage throughput benchmark corpus.

Writes JSONL lines {"id","text","channel","language"} to stdout (or --out).
Messages are assembled from many hand-written fragments (English and Spanish,
portal messages and contact-centre call notes), with slot fillers and light
noise (typos, all-caps, elongation, emoji, missing accents), using a fixed
seed so every run produces the same corpus.

The corpus exists to measure speed, not accuracy: it carries no labels.
It never copies a line of the labelled development set (checked with
--exclude).
"""

import argparse
import json
import random
import sys
import unicodedata

# ---------------------------------------------------------------- fillers
FILL = {
    "age": [str(a) for a in range(19, 96)],
    "sx": ["M", "F", "m", "f", "yo M", "yo F", "y/o male", "y/o female"],
    "dur": ["2h", "3 hrs", "since this am", "since last night", "x1d", "x 2 days",
            "about an hour", "30 min", "since lunch", "since yesterday", "for a week",
            "on and off for 3 days", "since 0500", "since Sunday"],
    "dur_es": ["desde anoche", "hace una hora", "desde ayer", "hace 2 días",
               "desde esta mañana", "hace como 30 minutos", "desde el domingo"],
    "rel": ["mom", "dad", "wife", "husband", "son", "daughter", "grandma", "grandpa",
            "mother-in-law", "neighbor", "sister", "brother", "aunt"],
    "rel_es": ["mi mamá", "mi papá", "mi esposo", "mi esposa", "mi hijo", "mi hija",
               "mi abuela", "mi abuelo", "mi suegra", "mi hermana"],
    "med": ["lisinopril", "metformin", "atorvastatin", "amlodipine", "levothyroxine",
            "omeprazole", "sertraline", "losartan", "albuterol inhaler", "gabapentin",
            "metoprolol", "escitalopram", "montelukast", "pantoprazole", "HCTZ",
            "rosuvastatin", "bupropion", "tamsulosin", "insulin glargine", "Eliquis",
            "Jardiance", "Trulicity", "prednisone", "fluticasone spray"],
    "med_es": ["metformina", "losartán", "atorvastatina", "omeprazol", "levotiroxina",
               "insulina", "amlodipino", "sertralina", "salbutamol", "enalapril"],
    "pharm": ["CVS on Main", "Walgreens on 5th", "the Rite Aid by my house", "Costco pharmacy",
              "mail order (Express Scripts)", "Kroger pharmacy", "the Walmart on Route 9",
              "Safeway", "the pharmacy on file", "HEB"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
            "next week", "the 14th", "the 21st", "tomorrow", "Jan 3rd", "March 8"],
    "day_es": ["el lunes", "el martes", "el miércoles", "el jueves", "el viernes",
               "la próxima semana", "mañana", "el día 15"],
    "doc": ["Patel", "Nguyen", "Lee", "Garcia", "Smith", "Okafor", "Cohen", "Rossi",
            "Kim", "Haddad", "Martinez", "Brown", "Singh", "Lopez"],
    "name": ["Maria", "John", "Linda", "Jose", "Tanya", "Robert", "Ana", "Keisha",
             "Dave", "Mei", "Luis", "Carol", "Sam", "Fatima"],
    "amt": ["$35", "$120", "$48.50", "$240", "$15", "$610", "$89", "$1,200"],
    "sys_hi": [str(s) for s in range(180, 221, 3)],
    "dia_hi": [str(d) for d in range(104, 131, 3)],
    "sys_mid": [str(s) for s in range(128, 176, 4)],
    "dia_mid": [str(d) for d in range(78, 99, 3)],
    "tf": ["100.4", "100.9", "101.2", "101.8", "102", "102.6", "103.1", "103.8", "104"],
    "tc": ["38.1", "38.4", "38.6", "39", "39.2", "39.5", "40"],
    "wk": [str(w) for w in range(6, 41)],
    "kid": ["3 week old", "6 wk old", "2 month old", "5 month old", "9 month old",
            "18 month old", "2 yo", "3 year old", "4yo", "6 year old", "8 yr old",
            "11 year old", "teenager"],
    "kid_es": ["bebé de 3 semanas", "bebé de 2 meses", "niño de 2 años",
               "niña de 4 años", "hijo de 8 años", "hija de 12 años"],
    "n": [str(n) for n in range(2, 11)],
    "phone": ["555-0142", "555-0199", "555-0107", "555-0186", "555-0123"],
}

# ---------------------------------------------------------------- English portal
GREET = ["", "", "", "Hi,", "Hello,", "hi", "Hey", "Good morning,", "Good afternoon.",
         "Hi Dr. {doc},", "Hello Dr {doc}", "Hi team,", "To whom it may concern,",
         "Hi nurse,", "hello there", "Dear care team,", "Hi it's {name} again,",
         "Hi, this is {name}'s {rel} writing.", "Quick question -", "Sorry to bother you,"]

CLOSE = ["", "", "", "Thanks", "Thank you!", "thanks so much", "thx", "Regards, {name}",
         "- {name}", "Sent from my iPhone", "Please call me at {phone}",
         "Appreciate it.", "Have a good day", "ty", "Thanks in advance", "God bless",
         "please let me know asap", "no rush"]

ROUTINE = [
    "I need a refill of my {med}, please send it to {pharm}.",
    "can you refill my {med}? I have about {n} days left",
    "Could I get a 90 day supply of {med} instead of 30?",
    "The pharmacy says they never received the prescription for {med}.",
    "I'd like to book my annual physical, {day} or later works.",
    "Can I move my appointment on {day} to a video visit?",
    "I need to cancel my appointment for {day}, something came up at work.",
    "Is there anything open {day} afternoon with Dr. {doc}?",
    "I got a bill for {amt} and I thought my insurance covered that visit.",
    "can someone explain the {amt} charge on my statement",
    "My insurance changed in January, how do I update my card on file?",
    "Do I need a referral to see a dermatologist with my plan?",
    "Please fax my records to Dr. {doc}'s office.",
    "I need my shot records for my kid's school, can you upload them?",
    "Could the doctor sign my FMLA form? HR needs it by {day}.",
    "Are my lab results back yet? I did the blood draw on {day}.",
    "what does a cholesterol of 212 mean on my results",
    "my A1c came back 6.4, what should I be doing differently?",
    "Is it ok to take ibuprofen with {med}?",
    "can I take my {med} at night instead of the morning?",
    "My home readings this week were around {sys_mid}/{dia_mid}, sending as requested.",
    "my sugars have been 120-150 fasting, no lows.",
    "I have a mild cold, runny nose and sneezing, no fever. What can I take?",
    "sore throat for 2 days but no fever and I'm eating fine.",
    "I've got a dry patch of skin on my elbow that itches, can I send a photo?",
    "mosquito bites on my legs are super itchy, any cream you recommend",
    "rolled my ankle last week, it's getting better, can I go back to running?",
    "I'd like a referral for physical therapy for my knee.",
    "Can I get the flu shot at my next visit?",
    "Is the new covid booster available at the clinic yet?",
    "My {kid} needs a well-child visit and the vaccines that go with it.",
    "how do I add my {rel} as a proxy on the app?",
    "I can't log in to the portal, it says my account is locked.",
    "what are your hours on {day}?",
    "Is there parking at the Elm St office?",
    "thank you to the front desk for being so patient with me last time",
    "Thank you for the quick callback yesterday, all good now.",
    "I want to talk about quitting smoking at my next visit.",
    "I'm traveling to Mexico {day}, do I need any vaccines?",
    "My knee arthritis is about the same, the cream helps a little.",
    "my mail-order pharmacy needs a new script for {med}",
    "Could you resend the intake questionnaire? the link expired.",
    "I'd like to switch my PCP to Dr. {doc}, is she accepting patients?",
    "I need a note for work saying I was seen on {day}.",
    "can I get a copy of my MRI report for my own records",
    "My prior authorization for {med} expired, can you renew it?",
    "when am I due for my colonoscopy?",
    "I think I'm due for a mammogram, can you send the order?",
    "the glucose sensor fell off early again, need a replacement rx",
    "I'd like to see a dietitian about my prediabetes.",
    "Allergies are bad this season, itchy eyes and sneezing, need something stronger.",
    "Heartburn after big meals, tums help. Should I take something daily?",
    "trouble sleeping the past couple weeks, any ideas besides melatonin?",
    "I get a mild tension headache at the end of long work days, any tips?",
    "Is a blood pressure of {sys_mid}/{dia_mid} something to bring up at my visit?",
    "My {rel} needs a new walker, can her doctor order one?",
    "Please update my address, I moved to 12 Birch Rd.",
    "I paid online but my balance still shows {amt}.",
    "can I get an itemized receipt for my HSA?",
    "does my plan cover a breast pump?",
]

RED = [
    "I've had chest pain {dur} and it goes into my left arm.",
    "my chest feels tight and heavy, I'm sweating and feel sick to my stomach",
    "there's a crushing pressure in my chest that won't go away",
    "I can't breathe right, even sitting still I'm gasping",
    "really short of breath {dur}, my lips look kind of blue",
    "my {rel}'s face is drooping on one side and her speech is slurred",
    "{rel} suddenly can't move his right arm and is talking funny",
    "sudden numbness on one side of my body and I can't find my words",
    "worst headache of my life, came on suddenly, threw up",
    "a sudden explosive headache, 10/10, stiff neck",
    "my BP is {sys_hi}/{dia_hi} and I have chest pain",
    "bp {sys_hi}/{dia_hi} with a pounding headache and blurry vision",
    "my throat feels like it's closing after I ate shrimp, lips swelling",
    "stung by a wasp and now hives everywhere and hard to breathe",
    "I want to kill myself and I have pills saved up for tonight",
    "I have a plan to end my life, I don't see the point anymore",
    "my {kid} swallowed some of grandma's pills",
    "I think I took too many of my {med} on purpose",
    "my {rel} just had a seizure and isn't waking up properly",
    "I passed out and had chest pain right before",
    "vomiting blood {dur}",
    "throwing up stuff that looks like coffee grounds",
    "black tarry stools and I almost fainted",
    "a lot of blood in my stool and bad stomach pain, feel lightheaded",
    "my calf is swollen after the long flight and now I'm short of breath",
    "{wk} weeks pregnant and bleeding heavily",
    "{wk} weeks pregnant, bad headache and seeing spots",
    "haven't felt the baby move since last night, {wk} weeks",
    "my {kid} has a fever of {tf} and is really sleepy",
    "my newborn has a temp of {tc}",
    "fever and a purple rash that doesn't fade when I press on it",
    "I'm on blood thinners and hit my head, now throwing up",
    "cut my hand and it won't stop bleeding, soaking through towels",
    "sudden severe pain in my testicle {dur}",
    "new medicine and now blisters on my skin and sores in my mouth",
    "{rel} is suddenly confused and doesn't know where she is",
    "fever, shaking chills, heart racing and I feel confused",
    "my blood sugar is over 500 and I'm throwing up and breathing fast",
    "my belly is rigid and it's the worst pain I've ever had",
]

URG = [
    "my blood pressure is {sys_hi}/{dia_hi} but I feel fine",
    "terrible headache for 3 days, nothing helps",
    "my right calf is swollen, warm and sore, no trouble breathing",
    "sudden sharp pain in my ribs when I take a deep breath",
    "stomach cramps for a few days and a little blood in my stool today",
    "sometimes I think everyone would be better off without me, I wouldn't act on it",
    "burning when I pee and now fever {tf} and back pain on one side",
    "fever of {tf} for 4 days now",
    "I can't keep my seizure meds down, vomiting since last night",
    "my {kid} has had diarrhea all day and fewer wet diapers",
    "fainted this morning getting up, feel ok now",
    "{rel} is more confused than usual the past two days",
    "spreading red warm area around a bite with a red streak",
    "{wk} weeks pregnant and some spotting",
    "heart racing at 140 on my watch on and off today",
    "can't pee since last night and my lower belly hurts",
    "the surgical incision is red, hot and leaking, fever {tf}",
    "fell and can't put weight on my hip",
    "eye pain and my vision is blurry in one eye",
    "new rash spreading after starting an antibiotic, breathing fine",
]

TRAP = [
    "No chest pain or shortness of breath, just need my {med} refilled.",
    "I don't have a fever, just a stuffy nose.",
    "denies chest pain. just asking about the billing code.",
    "What are the warning signs of a stroke? asking for my {rel}.",
    "if I ever get chest pain should I call 911 or come in?",
    "my dad had a heart attack at 55, should I get checked?",
    "my {rel} had a stroke years ago, is that hereditary?",
    "I had a blood clot in 2018 and need my Eliquis refill.",
    "had a seizure years ago, none since, need DMV paperwork signed",
    "this bill is giving me a headache",
    "your hold music is killing me lol",
    "I'm dying to know my lab results!",
    "can I get a copy of my chest x-ray?",
    "what do my blood test results mean?",
    "I'm bleeding money on copays, is there a generic?",
    "I had a bad headache last week but it's gone now.",
    "the cough I had is completely gone, do I still need the follow up?",
    "how do I use an epipen? my son was just prescribed one",
    "where can I get narcan just in case?",
    "what blood pressure is considered too high?",
    "what's a fever in a newborn? we're bringing the baby home {day}",
    "my heart skipped a beat when I saw the bill haha",
    "no blood in my stool, just a bit constipated",
    "no numbness or weakness, neurologist asked me to send my BP log",
    "had a bit of chest discomfort after my stent in 2019, fine since then",
]

# ---------------------------------------------------------------- English call notes
CN_PRE = ["", "", "pt calling,", "pt called", "{age}{sx}", "{age}{sx} calling,",
          "{rel} calling for {age}{sx},", "caller ({rel}) for pt,", "inbound call:",
          "VM returned,", "pt on line,", "transfer from IVR,", "pt states", "per caller"]

CN_ROUTINE = [
    "req RF {med} x90d, pharm on file",
    "wants OV for BP check, home readings {sys_mid}/{dia_mid}, no c/o",
    "req appt for annual, prefers AM",
    "cx appt {day}, will call to resched",
    "billing ? re {amt} charge, xfer to billing",
    "req records sent to Dr {doc}, release on file",
    "needs FMLA paperwork, dropping off {day}",
    "asking for lab results, not yet resulted",
    "URI sx x3d, afebrile, tolerating PO, wants OTC advice",
    "mild rash R forearm, no spread, no fever",
    "PA status for {med}, informed pending",
    "req new pt appt, transferring care",
    "stable DM f/u, last A1c 7.0, sched 3 mo",
    "wants flu shot appt",
    "portal login issue, reset sent",
    "update insurance, new card info taken",
    "WCC sched for {kid}, UTD vax",
    "DME order for nebulizer tubing",
    "called to thank Dr {doc}",
    "asking if PCP in network w/ new plan",
]
CN_RED = [
    "c/o CP {dur} radiating L arm, diaphoretic",
    "c/o chest tightness + SOB w/ min exertion",
    "SOB at rest, speaking 2-3 words, sat 86%",
    "R facial droop + slurred speech, onset {dur}",
    "L arm weakness + word-finding difficulty, LKW {dur}",
    "HA worst of life, sudden onset, N/V",
    "BP {sys_hi}/{dia_hi} w/ CP",
    "BP {sys_hi}/{dia_hi} + blurred vision + HA",
    "throat tightness + lip swelling after PCN",
    "SI w/ plan, has access to firearm",
    "OD on unk qty of {med}, drowsy",
    "1st time sz, post-ictal",
    "hematemesis x2",
    "coffee ground emesis, dizzy on standing",
    "melena + near syncope, on ASA/plavix",
    "calf swelling + sudden SOB + pleuritic CP, post-op",
    "{wk}wk pregnant w/ heavy VB",
    "{kid} temp {tf}F rectal, poor feeding",
    "on warfarin, fall w/ head strike, now vomiting",
    "sudden testicular pain + vomiting",
    "new confusion since am, was nl yesterday",
    "fever + rigors + HR 120s + confused",
]
CN_URG = [
    "home BP {sys_hi}/{dia_hi}, asymptomatic",
    "severe HA x3d, not relieved by OTC, no neuro sx",
    "L calf swelling + tenderness, denies SOB",
    "sudden rib pain w/ inspiration, no trauma",
    "abd pain + small amt blood in stool",
    "passive SI, denies plan/intent",
    "dysuria + flank pain + T {tf}",
    "vomiting, unable to tolerate AEDs",
    "near-syncope x2 today, no CP",
    "T {tf} x4d",
]
CN_TRAP = [
    "denies CP/SOB/HA",
    "no fever, no CP",
    "hx DVT 2018, no current leg sx",
    "hx CVA, no new sx",
    "asking about stroke sx for education",
    "FHx MI (father), wants lipid panel",
    "says bill 'gave her a heart attack' - joking, no sx",
    "prior HA resolved",
]
CN_POST = ["", "", "advised", "pt agreeable", "cb # {phone}", "sched w/ NP",
           "msg to RN pool", "pt verbalized understanding", "will route", "FYI"]

# ---------------------------------------------------------------- Spanish
GREET_ES = ["", "", "Hola,", "Buenos días,", "Buenas tardes", "hola doctor {doc},",
            "Disculpe,", "Hola, le escribe {name}.", "Buen día", "Hola enfermera,"]
CLOSE_ES = ["", "", "Gracias", "muchas gracias", "Saludos, {name}", "gracias de antemano",
            "Dios le bendiga", "por favor llámeme al {phone}", "quedo atenta"]
ROUTINE_ES = [
    "necesito la receta de mi {med_es}, se me está acabando",
    "me pueden mandar mi {med_es} a la farmacia de siempre?",
    "quiero hacer una cita para mi chequeo anual {day_es}",
    "necesito cambiar mi cita de {day_es} para otro día",
    "tengo que cancelar mi cita, era para {day_es}, lo siento",
    "me llegó una factura de {amt}, ¿no la cubre mi seguro?",
    "¿ya salieron mis resultados de laboratorio?",
    "¿qué significa el colesterol alto en mis análisis?",
    "necesito que el doctor firme un formulario para la escuela",
    "tengo gripa, mocos y estornudos, sin fiebre. ¿qué puedo tomar?",
    "me duele un poco la garganta pero no tengo fiebre",
    "tengo una mancha en la piel que me pica, ¿puedo mandar foto?",
    "¿tienen la vacuna de la gripe?",
    "mi {kid_es} necesita sus vacunas",
    "no puedo entrar al portal, olvidé mi contraseña",
    "¿a qué hora abren {day_es}?",
    "gracias por la atención, ya me siento mejor",
    "mis azúcares en ayunas andan entre 110 y 140",
    "la presión me ha salido {sys_mid}/{dia_mid} esta semana",
    "¿puedo tomar ibuprofeno con mi {med_es}?",
    "necesito una carta para el trabajo de que vine a consulta",
    "cambié de seguro, ¿cómo lo actualizo?",
    "me torcí el tobillo la semana pasada, ya está mejor",
    "quiero dejar de fumar, ¿qué opciones hay?",
]
RED_ES = [
    "tengo dolor de pecho {dur_es} y me baja al brazo izquierdo",
    "siento una presión muy fuerte en el pecho y estoy sudando",
    "me falta el aire aunque esté sentado",
    "no puedo respirar bien, tengo los labios morados",
    "{rel_es} tiene la cara caída de un lado y no puede hablar bien",
    "de repente no puedo mover el brazo y se me duerme la cara",
    "el peor dolor de cabeza de mi vida, me vino de golpe",
    "la presión me salió {sys_hi}/{dia_hi} y me duele el pecho",
    "se me está cerrando la garganta después de comer camarón",
    "quiero quitarme la vida, ya tengo las pastillas",
    "mi {kid_es} se tomó unas pastillas de la abuela",
    "{rel_es} está convulsionando",
    "estoy vomitando sangre",
    "las heces me salen negras y me siento muy débil",
    "mucha sangre en las heces y dolor de estómago fuerte",
    "tengo {wk} semanas de embarazo y estoy sangrando mucho",
    "mi {kid_es} tiene fiebre de {tc}",
    "me pegué en la cabeza y tomo anticoagulantes, ahora vomito",
    "{rel_es} de repente está confundida y no nos reconoce",
    "dolor muy fuerte en un testículo de repente",
]
URG_ES = [
    "la presión me salió {sys_hi}/{dia_hi} pero me siento bien",
    "dolor de cabeza fuerte desde hace 3 días",
    "la pantorrilla hinchada y caliente, me duele al caminar",
    "dolor en las costillas de repente al respirar",
    "un poco de sangre en las heces y cólicos",
    "a veces pienso que sería mejor no despertar",
    "ardor al orinar y fiebre de {tc}",
    "no puedo tomar mi medicina de las convulsiones porque vomito todo",
    "me desmayé esta mañana, ya estoy bien",
]
TRAP_ES = [
    "no tengo dolor de pecho, solo necesito la receta",
    "¿cuáles son las señales de un derrame cerebral?",
    "mi papá tuvo un infarto a los 50, ¿me deben revisar?",
    "tuve un coágulo en 2019, necesito mi eliquis",
    "la factura me dio dolor de cabeza",
    "me muero por saber mis resultados",
    "necesito copia de mi radiografía de pecho",
    "no tengo fiebre ni dolor",
    "el dolor de cabeza de la semana pasada ya se me quitó",
    "si me duele el pecho, ¿llamo al 911?",
]

EMOJI = ["🙏", "😩", "😷", "🤒", "😢", "😅", "❤️", "😬", "🤧", "👍"]


def fill(rng, s):
    out = s
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        key = out[start + 1:end]
        out = out[:start] + rng.choice(FILL[key]) + out[end + 1:]
    return out


def typo(rng, text):
    words = text.split(" ")
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(len(words))
        w = words[i]
        if len(w) > 4:
            j = rng.randrange(1, len(w) - 2)
            kind = rng.random()
            if kind < 0.4:
                w = w[:j] + w[j + 1] + w[j] + w[j + 2:]   # swap
            elif kind < 0.7:
                w = w[:j] + w[j + 1:]                     # drop
            else:
                w = w[:j] + w[j] + w[j:]                  # double
            words[i] = w
    return " ".join(words)


def elongate(rng, text):
    words = text.split(" ")
    i = rng.randrange(len(words))
    w = words[i]
    vowels = [k for k, c in enumerate(w) if c in "aeiouo"]
    if vowels:
        k = rng.choice(vowels)
        w = w[:k] + w[k] * rng.randint(3, 6) + w[k + 1:]
        words[i] = w
    return " ".join(words)


def strip_accents(text):
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


def join(parts, sep):
    """Join fragments; after a fragment that already ends in punctuation use a space."""
    out = ""
    for p in parts:
        if not p:
            continue
        if not out:
            out = p
        elif out[-1] in ".,;:?!-" and sep.strip() in (".", ""):
            out += " " + p
        else:
            out += sep + p
    return out


def pick_kind(rng):
    r = rng.random()
    if r < 0.50:
        return "routine"
    if r < 0.62:
        return "trap"
    if r < 0.85:
        return "red"
    return "urgent"


def portal_en(rng, kind):
    body = [rng.choice(ROUTINE) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
    if kind == "trap":
        body.insert(rng.randrange(len(body) + 1), rng.choice(TRAP))
    elif kind == "red":
        frag = rng.choice(RED)
        if rng.random() < 0.35:
            body.append("Also " + frag)     # buried after routine content
        else:
            body = [frag] + body[: rng.choice([0, 0, 1])]
    elif kind == "urgent":
        body.insert(rng.randrange(len(body) + 1), rng.choice(URG))
    parts = [rng.choice(GREET)] + body + [rng.choice(CLOSE)]
    sep = rng.choice([" ", " ", "\n", " and ", ". "]) if rng.random() < 0.2 else " "
    return join(parts, sep)


def call_en(rng, kind):
    pre = rng.choice(CN_PRE)
    if kind == "red":
        body = [rng.choice(CN_RED)]
        if rng.random() < 0.4:
            body.append(rng.choice(CN_ROUTINE))
    elif kind == "urgent":
        body = [rng.choice(CN_URG)]
    elif kind == "trap":
        body = [rng.choice(CN_ROUTINE), rng.choice(CN_TRAP)]
        rng.shuffle(body)
    else:
        body = [rng.choice(CN_ROUTINE)]
    post = rng.choice(CN_POST)
    sep = rng.choice([", ", "; ", ". ", " - "])
    return " ".join(p for p in [pre, sep.join(body), post] if p)


def portal_es(rng, kind):
    body = [rng.choice(ROUTINE_ES) for _ in range(rng.choice([1, 1, 2]))]
    if kind == "trap":
        body.insert(rng.randrange(len(body) + 1), rng.choice(TRAP_ES))
    elif kind == "red":
        frag = rng.choice(RED_ES)
        if rng.random() < 0.3:
            body.append("y también " + frag)
        else:
            body = [frag]
    elif kind == "urgent":
        body.insert(rng.randrange(len(body) + 1), rng.choice(URG_ES))
    parts = [rng.choice(GREET_ES)] + body + [rng.choice(CLOSE_ES)]
    return join(parts, rng.choice([". ", ". ", " ", ", "]))


def noise(rng, text, lang):
    r = rng.random()
    if r < 0.12:
        text = text.lower()
    elif r < 0.16:
        text = text.upper()
    if rng.random() < 0.10:
        text = typo(rng, text)
    if rng.random() < 0.05:
        text = elongate(rng, text)
    if rng.random() < 0.06:
        text = text + " " + rng.choice(EMOJI)
    if lang == "es" and rng.random() < 0.3:
        text = strip_accents(text)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=12000, help="number of messages")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--out", default="-")
    ap.add_argument("--exclude", help="JSONL whose texts must not be reproduced (dev set)")
    args = ap.parse_args()

    excluded = set()
    if args.exclude:
        with open(args.exclude, encoding="utf-8") as f:
            excluded = {json.loads(line)["text"].strip().lower() for line in f if line.strip()}

    rng = random.Random(args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    written = 0
    while written < args.n:
        lang = "es" if rng.random() < 0.18 else "en"
        channel = "call_note" if rng.random() < 0.22 else "portal"
        kind = pick_kind(rng)
        if lang == "es":
            text = portal_es(rng, kind)
            if channel == "call_note":
                text = "pte hispanohablante, refiere: " + text
        elif channel == "call_note":
            text = call_en(rng, kind)
        else:
            text = portal_en(rng, kind)
        text = noise(rng, fill(rng, text), lang).strip()
        if not text or text.lower() in excluded:
            continue
        written += 1
        rec = {"id": f"b{written:06d}", "text": text, "channel": channel, "language": lang}
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
