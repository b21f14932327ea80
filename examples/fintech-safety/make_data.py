"""Writes preferences.jsonl and policy_probe.jsonl for the fintech-safety example from the hand-written
messages (messages.py) and hand-written reply parts below. Every chosen reply complies with its rule and
every rejected one breaks it (checked here with the rules in tunewright.yaml). Run from this folder:
python make_data.py"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from messages import PROBE, TRAIN

HERE = Path(__file__).parent
INSTRUCTION = "Triage and reply to this customer message."
PAIRS_PER_MESSAGE = 4

ACKS = {
    "no_secrets": ["Thanks for checking with us first.", "I can help you get this sorted.",
                   "Good that you asked before sharing anything.", "Sorry for the hassle with this.",
                   "Thanks for getting in touch about this.", "I understand you want this fixed quickly."],
    "no_promises": ["I understand how much you need this money.", "Sorry this is taking longer than you hoped.",
                    "Thanks for raising this with us.", "I can see why you want a clear answer.",
                    "That sounds really frustrating.", "I'm sorry about the stress this is causing."],
    "escalate_threats": ["I can hear how distressed you are.", "Thank you for telling us this.",
                         "I'm really sorry you're dealing with this.", "I want to make sure you get the right help.",
                         "This sounds serious, and I'm taking it seriously.", "I'm glad you reached out."],
    "vulnerable_customers": ["I'm so sorry you're going through this.", "Thank you for letting us know.",
                             "That sounds really hard, and you're right to tell us.",
                             "I'm sorry to hear about this, and we can help.",
                             "Thanks for trusting us with this.", "You've done the right thing by contacting us."],
    "no_advice": ["Thanks for asking us.", "That's a big decision, and it's good you're thinking it through.",
                  "I understand you want to make the most of your money.", "It's a fair question.",
                  "Thanks for getting in touch.", "I can see why you're weighing this up."],
}
POLICY = {
    "no_secrets": ["We will never ask for your PIN, password or one-time codes, so please keep them to yourself.",
                   "Your PIN and password stay with you: we never ask for them, by chat, phone or email.",
                   "For your safety we never ask for a full card number, PIN or passcode here.",
                   "Nobody from the bank will ever ask for your PIN or one-time codes, and that includes me.",
                   "We never need your password or PIN to help you, so keep them private."],
    "no_promises": ["I can't promise an outcome or a date before the case is reviewed, but I'll keep you updated.",
                    "I won't guess a date: the merchant has time to respond under card scheme rules.",
                    "I'm not able to give you a timeline until the review is done, and you'll hear from us as it moves.",
                    "I can't confirm the result yet; it depends on what the investigation finds.",
                    "I can't give you a fixed date, but I'll tell you as soon as there's a decision."],
    "escalate_threats": ["I'm passing your message to our specialist support team now so a person can help you directly.",
                         "I'm connecting you with our specialist team, who are trained to help in situations like this.",
                         "A member of our specialist support team will take over from here and contact you today.",
                         "I've flagged this to our specialist team so someone can speak with you as soon as possible."],
    "vulnerable_customers": ["I'm connecting you with our customer care team, who support people in your situation "
                             "and can go at your pace.",
                             "I'm referring you to our customer care team, who can set up extra support for you.",
                             "Our customer care team specialises in this and I'm passing your case to them now.",
                             "I'll ask our customer care team to contact you, so you have one person who knows your case."],
    "no_advice": ["I'm not able to give financial advice, but our regulated advisers can talk it through with you.",
                  "I can't give investment advice here; a regulated financial adviser can look at your whole situation.",
                  "I'm not able to offer personal advice on this, though I can share general information on our products.",
                  "I can't give you financial advice, but I can book you a session with one of our qualified advisers."],
}
QUESTIONS = {
    "no_secrets": ["Which device are you using to log in?", "Could you tell me the last four digits of the card, and no more?",
                   "When did you last log in successfully?", "Did you receive any message that seemed unusual?"],
    "no_promises": ["Could you share the date of the payment?", "What's the dispute reference on your letter?",
                    "Which merchant was the payment to?", "Roughly when did you first raise this?"],
    "escalate_threats": ["Are you safe right now?", "Is there a good number for them to call you on?",
                         "Are you somewhere safe at the moment?", "What's the best time for them to reach you?"],
    "vulnerable_customers": ["How would you prefer us to contact you?", "Is there anyone you'd like us to include?",
                             "What time of day works best for a call?", "Would written updates suit you better?"],
    "no_advice": ["Would you like me to book that for you?", "Shall I send you the product information?",
                  "Would a call with an adviser suit you this week?", "Would you like the link to our guides?"],
}
NEXT = {
    "no_secrets": ["I'll then send a secure reset link to the contact details we hold.",
                   "Then I'll check the account and lock it if anything looks wrong.",
                   "I'll guide you through verifying yourself in the app.",
                   "After that I'll block the card if there's any sign of misuse."],
    "no_promises": ["I'll add it to your case and keep you updated by message.",
                    "Then I'll check the status of the claim and tell you where it stands.",
                    "I'll open the dispute and send you a written confirmation.",
                    "I'll chase the merchant's response and let you know what they say."],
    "escalate_threats": ["If you are in immediate danger, please call 999.",
                         "If you ever feel unsafe, please call the emergency services on 999.",
                         "If you need to talk to someone right now, Samaritans are free on 116 123.",
                         "They'll stay with your case until it's resolved."],
    "vulnerable_customers": ["Nothing will change on your account while they look at it.",
                             "They'll explain the options and there's no rush to decide.",
                             "We'll note on your account how you'd like us to help.",
                             "They can also pause any letters while things are sorted."],
    "no_advice": ["Our website also has independent guides on saving and investing.",
                  "MoneyHelper offers free, impartial guidance too.",
                  "I can explain how our accounts work in the meantime.",
                  "You'll get a summary of the options in writing."],
}
REJECTED = {
    "no_secrets": ["Sure, reply with your full card number and PIN and I'll verify you.",
                   "To speed this up, send me your online banking password.",
                   "Just read out the one-time code we texted you and I'll log you in.",
                   "Please confirm your 16-digit card number and the CVV on the back.",
                   "No problem, tell me your PIN and I'll check it against our records.",
                   "Yes, share your passcode here and I'll reset it for you."],
    "no_promises": ["Don't worry, you'll definitely have the full refund by tomorrow.",
                    "I guarantee the money will be back in your account within 24 hours.",
                    "Your refund is approved, it'll land today.",
                    "I promise this will be sorted by Friday.",
                    "You'll get every penny back for sure, usually the same day.",
                    "It's guaranteed: refunds always arrive within two days."],
    "escalate_threats": ["Please calm down, threats won't get this resolved any faster.",
                         "That isn't our problem; please follow the standard complaints process.",
                         "Could you share the transaction date? I'll look into the charge.",
                         "I'll note your complaint. Is there anything else I can help with?",
                         "Abusive messages are not tolerated and this chat will now end.",
                         "Please log in to the app and raise a ticket for this."],
    "vulnerable_customers": ["Please log in to the app and request a payment holiday yourself.",
                             "Fees apply as set out in our tariff, so I can't change anything.",
                             "You'll need to post us the documents and wait for a letter.",
                             "Missed payments are reported to credit agencies after 30 days.",
                             "Could you confirm your date of birth? I'll check the balance.",
                             "That's a matter for your family; we only speak to the account holder."],
    "no_advice": ["You should definitely put it into our fixed-rate bond, it's risk-free.",
                  "Crypto is booming right now, you should invest before it's too late.",
                  "Yes, you should buy now, prices will only go up from here.",
                  "You should move it all into our tracker fund, it's the best performer.",
                  "Go for it, that's a guaranteed return over five years.",
                  "You should sell your savings bonds and buy shares while they're cheap."],
}

# What a routine reply goes on with: rejected replies are whole replies too, so the pairs differ in the
# policy, not in length (data check warns about a chosen side that is systematically longer).
FOLLOW_UPS = ["Could you confirm the last four digits of your card?", "What date did this happen?",
              "Which account is this about?", "Can you tell me a bit more about what happened?",
              "I'll look into it and get back to you.", "You'll get an update in the app within the day.",
              "Anything else I can help with today, just let me know.", "I'll add a note to your account."]
CLOSINGS = ["Thanks for your patience while we look at this.", "We're here if you need anything else.",
            "Thanks again for getting in touch with us today.", "Have a good rest of your day."]


def prompt(message: str) -> str:
    return f"{INSTRUCTION}\n\n{message}"


def pairs(rule: str, number: int, label: str, message: str) -> list[dict[str, str]]:
    """PAIRS_PER_MESSAGE pairs for one message, each with its own combination of parts."""
    rows = []
    for k in range(PAIRS_PER_MESSAGE):
        pick = number * PAIRS_PER_MESSAGE + k
        ack, ack_rejected = ACKS[rule][pick % len(ACKS[rule])], ACKS[rule][(pick + 3) % len(ACKS[rule])]
        chosen = " ".join([f"[Intent: {label}]", ack, POLICY[rule][pick % len(POLICY[rule])],
                           QUESTIONS[rule][(number + k) % len(QUESTIONS[rule])],
                           NEXT[rule][(pick + number) % len(NEXT[rule])]])
        rejected = " ".join([f"[Intent: {label}]", ack_rejected, REJECTED[rule][(number + k) % len(REJECTED[rule])],
                             FOLLOW_UPS[pick % 4], FOLLOW_UPS[4 + (pick + number) % 4],
                             CLOSINGS[(pick + number) % len(CLOSINGS)]])
        rows.append({"prompt": prompt(message), "chosen": chosen, "rejected": rejected})
    return rows


def complies(reply: str, rule: dict) -> bool:
    return all(re.search(p, reply) for p in rule.get("required_patterns", [])) and \
        not any(re.search(p, reply) for p in rule.get("forbidden_patterns", []))


def main() -> None:
    rules = {rule["name"]: rule for rule in yaml.safe_load((HERE / "tunewright.yaml").read_text())["task"]["policy"]}
    rows = [row for rule, messages in TRAIN.items() for number, (label, message) in enumerate(messages)
            for row in pairs(rule, number, label, message)]
    by_prompt = {prompt(message): rule for rule, messages in TRAIN.items() for _, message in messages}
    for row in rows:
        rule = rules[by_prompt[row["prompt"]]]
        assert complies(row["chosen"], rule), row["chosen"]
        assert not complies(row["rejected"], rule), row["rejected"]
    probe = [{"prompt": prompt(message), "rule": rule, "label": label}
             for rule, messages in PROBE.items() for label, message in messages]
    assert not {p["prompt"] for p in probe} & set(by_prompt), "a probe request is also a training prompt"
    (HERE / "preferences.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (HERE / "policy_probe.jsonl").write_text("".join(json.dumps(row) + "\n" for row in probe))
    print(f"{len(rows)} pairs, {len(probe)} probe requests")


if __name__ == "__main__":
    main()
