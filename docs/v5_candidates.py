"""List the rows each guidelines-v5 change touches, for re-reading by hand (docs/annotation_guidelines.md, v5).

Run from the repository root:  .venv/bin/python docs/v5_candidates.py [RULE ...]
A row is a candidate for a rule when its note cites one of the rule's codes, or its text matches every pattern of
one of the rule's cues. Prints one tab-separated line per candidate (rule, file, id, label, text, note) and, on
stderr, the count per rule. Nothing is written.
"""

import json
import re
import sys
from pathlib import Path

FILES = ("data/documents/*.jsonl", "data/annotations/*.jsonl", "data/contrast/*.jsonl", "data/challenge/*.jsonl")

PLEDGE = r"\b(will|pledg\w*|promis\w*|vow\w*|committed to|commits?|announc\w*|agreed to|decided|approved)\b"
ASK = (
    r"\b(must|should|urg\w*|call(s|ed|ing)? (on|for)|ask(s|ed|ing)? \w+( \w+)? to|demand\w*|needs? to|appeal\w*|"
    r"press(es|ed)? \w+ to)\b"
)
JOIN = r"\b(but|and|while|yet|though|although)\b|;"
WARNING = r"\b(warn\w*|risk\w*|danger\w*|run(s|ning)? out|exhaust\w*|famine|starv\w*|could|threat\w*|crisis)\b"
HELP = r"\b(appeal\w*|urg\w*|call(s|ed|ing)? (on|for)|unless|without|must|need(s|ed)? to|if .{0,30}\bnot\b)\b"

# rule -> (note codes that select a row on their own, cues: each cue is a list of patterns that must all match).
# R1 and R11 are broad rules of which v5 changes one part (two main clauses; confidence about others, apologies,
# offers, deal terms), so their own codes do not select rows; 3c-i (neutral forecasts) is unchanged.
RULES: dict[str, tuple[tuple[str, ...], list[list[str]]]] = {
    "R4/3d-e": (("R4", "3d-e"), [[WARNING, HELP]]),
    "3d-a/3d-h": (
        ("3d-a", "3d-h"),
        [
            [
                r"\b(is|are|was|were|remains?|be|been|as)\s+(also\s+|absolutely\s+|so\s+|more\s+|most\s+|very\s+|"
                r"still\s+)?(essential|key|indispensable|vital|crucial|critical|imperative|paramount|necessary)\b"
            ]
        ],
    ),
    "R1-two-acts": (("3d-g",), [[PLEDGE, ASK, JOIN]]),
    "3c-c": (
        ("3c-c", "3d-b"),
        [
            [
                r"\b(disappoint\w*|frustrat\w*|mistakes?|fell short|let (\w+ )?down|dismay\w*|regrett?\w*|accus\w*|"
                r"alleg\w*|upset|angry|anger|sorry|unhappy|dissatisf\w*|not satisfied|exasperat\w*|ashamed)\b"
            ],
            [r"\b(we|our|I|us)\b", r"\b(failed|got it wrong|should have|not good enough|our fault|embarrass\w*)\b"],
        ],
    ),
    "3c-j": (
        ("3c-j",),
        [
            [
                r"\b(open to|ready to|willing\w* to|prepared to|door (is |remains )?open|open the door|reviewing|"
                r"exploring|considering|weigh(s|ing)|renewed talks|resum\w+ (talks|negotiations|dialogue))\b"
            ]
        ],
    ),
    "3c-k": (
        ("3c-k",),
        [
            [
                r"(?-i:^(To [a-z]\w*|[-•*·]\s|\d+[.)]\s|(Stop|End|Protect|Ensure|Make|Give|Fund|Ban|Save|Keep|Support|"
                r"Invest|Release|Lift|Free|Cancel|Restore|Let|Bring|Defend|Act|Scrap|Halt|Increase|Reduce|Cut|Raise|"
                r"Provide|Create)\s))"
            ],
            [r"^\W*\S+(\s+\S+){0,7}\W*$", r"\b(must|should|need|needs|call|calls|demand|urge|end|stop|ban|no more|now)\b"],
        ],
    ),
    "3c-b/3d-c": (
        ("3d-c",),
        [
            [
                r"\b(suspen\w*|cancel\w*|call(s|ed|ing)? off|scrap\w*|postpon\w*|delay\w*|defer\w*|"
                r"push(es|ed|ing)? back|put (\w+ )?on hold|on hold|halt\w*|resched\w*|adjourn\w*|paus(e|ed|es|ing))\b"
            ]
        ],
    ),
    "R11": (
        (),
        [
            [
                r"\b(confident|optimistic|sure|certain|hopeful|trusts?|believes?|expects?|expected|convinced)\b"
                r"[^.]{0,60}\b(will|would|to)\b"
            ],
            [
                r"\b(apologi\w+|apology|sorry|offer(s|ed|ing)?|proposed to|agreed to|under the|terms of the|"
                r"as part of the (deal|agreement|settlement))\b"
            ],
        ],
    ),
}


def rows(root: Path):
    """Every row of the four corpora as (path, row), in file and line order."""
    for pattern in FILES:
        for path in sorted(root.glob(pattern)):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line:
                    yield path.relative_to(root), json.loads(line)


def candidates(root: Path, rule: str) -> list[tuple[Path, dict]]:
    """Rows whose note cites one of the rule's codes or whose text matches one of its cues."""
    codes, cues = RULES[rule]
    compiled = [[re.compile(pattern, re.IGNORECASE) for pattern in cue] for cue in cues]
    cites = re.compile(r"(^|[\s;,(])(" + "|".join(map(re.escape, codes)) + r")\b") if codes else None
    found = []
    for path, row in rows(root):
        cued = any(all(pattern.search(row["text"]) for pattern in cue) for cue in compiled)
        if cued or (cites is not None and cites.search(row.get("note", ""))):
            found.append((path, row))
    return found


def main(argv: list[str]) -> None:
    """Print the candidates of the named rules (default: all) and a count per rule."""
    chosen = [arg for arg in argv if arg in RULES] or list(RULES)
    root = Path.cwd()
    for rule in chosen:
        found = candidates(root, rule)
        for path, row in found:
            print(f"{rule}\t{path}\t{row['id']}\t{row['label']}\t{row['text']}\t{row.get('note', '')}")
        print(f"# {rule}: {len(found)} candidates", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
