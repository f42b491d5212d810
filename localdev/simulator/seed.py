"""Deterministic generator of realistic Defender for Cloud Apps alerts for the simulator.

Why it exists: the app is proven against the simulator, so the data must exercise what real tenants send —
every documented enum value (severity 0-3, resolution status 0-5, status 0-2, all stories and MITRE
intents), HTML and markdown descriptions, the entity kinds clients parse, epoch-millisecond timestamps and,
above all, bursts of many alerts sharing one millisecond (the case that breaks naive `last timestamp + 1`
paging: the API does not page reliably past 5,000).

Everything comes from one seeded `random.Random`, so a seed plus a time window always yields the same
alerts. Generation is cheap (entity dicts are prebuilt and shared between alerts; nothing mutates them) so
20,000 alerts take a small fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")

SEVERITIES: dict[int, str] = {0: "LOW", 1: "MEDIUM", 2: "HIGH", 3: "INFORMATIONAL"}
RESOLUTION_STATUSES: dict[int, str] = {
    0: "OPEN",
    1: "DISMISSED",
    2: "RESOLVED",
    3: "FALSE_POSITIVE",
    4: "BENIGN",
    5: "TRUE_POSITIVE",
}
STATUSES: dict[int, str] = {0: "UNREAD", 1: "READ", 2: "ARCHIVED"}
STORIES: dict[int, str] = {
    0: "THREAT_DETECTION",
    1: "PRIVILEGED_ACCOUNT_MONITORING",
    2: "COMPLIANCE",
    3: "DLP",
    4: "DISCOVERY",
    5: "SHARING_CONTROL",
    7: "ACCESS_CONTROL",
    8: "CONFIGURATION_MONITORING",
}
INTENTS: dict[int, str] = {
    0: "UNKNOWN",
    1: "PREATTACK",
    2: "INITIAL_ACCESS",
    3: "PERSISTENCE",
    4: "PRIVILEGE_ESCALATION",
    5: "DEFENSE_EVASION",
    6: "CREDENTIAL_ACCESS",
    7: "DISCOVERY",
    8: "LATERAL_MOVEMENT",
    9: "EXECUTION",
    10: "COLLECTION",
    11: "EXFILTRATION",
    12: "COMMAND_AND_CONTROL",
    13: "IMPACT",
}

# App ids as the alerts API returns them (https://learn.microsoft.com/defender-cloud-apps/api-alerts).
SERVICES: dict[int, str] = {
    11161: "Office 365",
    20893: "Microsoft Exchange Online",
    20892: "Microsoft SharePoint Online",
    15600: "Microsoft OneDrive for Business",
    28375: "Microsoft Teams",
    12260: "Microsoft Azure",
    11599: "Amazon Web Services",
    11770: "Google Workspace",
    10489: "Box",
    11627: "Dropbox",
    11114: "Salesforce",
    10980: "Okta",
    20940: "Active Directory",
}

BURST_MIN, BURST_MAX = 5, 50


@dataclass(frozen=True)
class AlertTemplate:
    title: str
    description: str  # str.format with user, ip, country, app, count, file
    markdown: bool
    policy_type: str
    stories: tuple[int, ...]
    intents: tuple[int, ...]
    services: tuple[int, ...]
    severities: tuple[int, ...]  # weighted by repetition
    with_device: bool = False
    with_file: bool = False
    with_country: bool = False
    system: bool = True


TEMPLATES: tuple[AlertTemplate, ...] = (
    AlertTemplate(
        "Impossible travel activity",
        "<p>The user <b>{user}</b> performed activities from <b>{ip}</b> in {country} and from a distant "
        "location within a time period shorter than the expected travel time.</p>",
        False,
        "ANOMALY_DETECTION",
        (0,),
        (2,),
        (11161, 20893),
        (1, 1, 2),
        with_country=True,
    ),
    AlertTemplate(
        "Activity from infrequent country",
        "<p>The user <b>{user}</b> performed an activity from {country}, a country not recently or never "
        "visited by any user in the organization.</p>",
        False,
        "ANOMALY_DETECTION",
        (0,),
        (2, 1),
        (11161, 28375),
        (0, 1),
        with_country=True,
    ),
    AlertTemplate(
        "Activity from anonymous IP addresses",
        "<p>The user <b>{user}</b> performed an activity from <b>{ip}</b>, an IP address identified as an "
        "anonymous proxy.</p>",
        False,
        "ANOMALY_DETECTION",
        (0,),
        (2, 5),
        (11161, 12260),
        (1, 2),
    ),
    AlertTemplate(
        "Mass download by a single user",
        "The user **{user}** downloaded {count} files from **{app}** in a single session, far above "
        "their usual activity.",
        True,
        "ANOMALY_DETECTION",
        (0, 3),
        (10, 11),
        (15600, 20892, 10489, 11627),
        (1, 2),
        with_device=True,
    ),
    AlertTemplate(
        "Ransomware activity",
        "<p>The user <b>{user}</b> uploaded {count} files with an uncommon extension to {app}, matching a "
        "ransomware encryption pattern.</p>",
        False,
        "ANOMALY_DETECTION",
        (0,),
        (13, 9),
        (15600, 20892),
        (2,),
        with_device=True,
        with_file=True,
    ),
    AlertTemplate(
        "Suspicious inbox forwarding",
        "<p>The user <b>{user}</b> created an inbox rule that forwards all incoming email to an external "
        "address.</p>",
        False,
        "ANOMALY_DETECTION",
        (0,),
        (10, 11, 3),
        (20893,),
        (1, 2),
    ),
    AlertTemplate(
        "Multiple failed login attempts",
        "The user **{user}** failed {count} sign-in attempts from **{ip}** in a short time.",
        True,
        "ANOMALY_DETECTION",
        (0, 1),
        (6,),
        (11161, 10980),
        (0, 1),
    ),
    AlertTemplate(
        "Unusual file deletion activity",
        "<p>The user <b>{user}</b> deleted {count} files in {app} in a single session.</p>",
        False,
        "ANOMALY_DETECTION",
        (0,),
        (13,),
        (20892, 15600, 11770),
        (1,),
        with_file=True,
    ),
    AlertTemplate(
        "Mass share of sensitive files",
        "<p>The user <b>{user}</b> shared {count} files labelled Confidential with external users in "
        "{app}.</p>",
        False,
        "FILE",
        (5, 3),
        (11,),
        (15600, 20892, 10489),
        (1, 2),
        with_file=True,
        system=False,
    ),
    AlertTemplate(
        "Honeytoken activity",
        "<p>Activity was detected on the honeytoken account <b>{user}</b> from <b>{ip}</b>.</p>",
        False,
        "ANOMALY_DETECTION",
        (0, 1),
        (7, 8),
        (20940,),
        (1, 2),
    ),
    AlertTemplate(
        "Unusual addition of credentials to an OAuth app",
        "<p>The user <b>{user}</b> added credentials to an OAuth app in {app}; this can indicate an "
        "attacker establishing persistence.</p>",
        False,
        "ANOMALY_DETECTION",
        (0, 1),
        (3, 4),
        (12260, 11161),
        (2,),
    ),
    AlertTemplate(
        "Administrative activity from a non-corporate IP address",
        "<p>The administrator <b>{user}</b> performed an administrative activity in {app} from <b>{ip}</b>, "
        "which is not a corporate address.</p>",
        False,
        "ACTIVITY",
        (1, 7),
        (4, 8),
        (12260, 11599, 11161),
        (0, 1, 3),
        system=False,
    ),
    AlertTemplate(
        "File containing PCI data shared externally",
        "The file **{file}** owned by **{user}** matched the PCI DSS policy and is shared outside the "
        "organization in {app}.",
        True,
        "FILE",
        (2, 3),
        (0,),
        (10489, 11627, 11770),
        (1, 3),
        with_file=True,
        system=False,
    ),
    AlertTemplate(
        "Risky app discovered: unsanctioned cloud storage",
        "<p>{count} users uploaded data to an unsanctioned cloud storage app discovered from firewall "
        "logs.</p>",
        False,
        "NEW_SERVICE",
        (4,),
        (11, 12),
        (11161,),
        (0, 3),
        system=False,
    ),
    AlertTemplate(
        "Security configuration changed",
        "The setting for multi-factor authentication was changed by **{user}** in {app}.",
        True,
        "ACTIVITY",
        (8, 1),
        (5, 3),
        (12260, 11599, 11114),
        (0, 3),
        system=False,
    ),
    AlertTemplate(
        "Blocked session by access policy",
        "<p>A session of <b>{user}</b> to {app} from an unmanaged device was blocked by a session "
        "policy.</p>",
        False,
        "SESSION_CONTROL",
        (7,),
        (0, 12),
        (11114, 11161),
        (3, 0),
        with_device=True,
        system=False,
    ),
)

ALERT_TYPE_BY_TITLE: dict[str, int] = {t.title: i + 1 for i, t in enumerate(TEMPLATES)}

_FIRST = (
    "alex",
    "bianca",
    "carlos",
    "dana",
    "erik",
    "fatima",
    "george",
    "hana",
    "ivan",
    "julia",
    "kenji",
    "lena",
    "mateo",
    "nora",
    "oscar",
    "priya",
    "quentin",
    "rosa",
    "samir",
    "tamar",
    "uma",
    "victor",
    "wen",
    "xavier",
    "yara",
    "zoe",
)
_LAST = ("smith", "garcia", "chen", "kowalski", "okafor", "nielsen", "rossi", "tanaka", "haddad", "meyer")
_COUNTRIES = (
    ("US", "United States"),
    ("DE", "Germany"),
    ("BR", "Brazil"),
    ("NG", "Nigeria"),
    ("RU", "Russia"),
    ("IN", "India"),
    ("JP", "Japan"),
    ("NL", "Netherlands"),
    ("AU", "Australia"),
)
_FILES = (
    "Q3-budget.xlsx",
    "customer-list.csv",
    "payroll-2024.xlsx",
    "design-spec.docx",
    "board-deck.pptx",
    "passwords.txt",
    "contracts.zip",
    "source-export.tar.gz",
)
_COMMENTS = (
    "Confirmed with the user",
    "Expected behaviour for this team",
    "Investigated, no threat",
    "Escalated to IR",
    "Test alert from red team exercise",
    "Known VPN egress",
)


def iso_ms(epoch_ms: int) -> str:
    """Epoch ms -> ISO-8601 with milliseconds and Z, the format the service uses for `resolveTime`."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _policy_id(title: str) -> str:
    return hashlib.sha256(title.encode()).hexdigest()[:24]


class AlertFactory:
    """Builds alert dicts; one instance per tenant keeps `_id` / `idValue` unique across seeds and adds."""

    def __init__(self, *, seed: int, portal_url: str, context_id: str, domain: str = "contoso.com") -> None:
        self._rng = random.Random(seed)
        self._portal = portal_url.rstrip("/")
        self._context_id = context_id
        self._machine = self._rng.getrandbits(40)
        self._counter = self._rng.getrandbits(16)
        self._id_value = 15_000_000 + self._rng.randrange(100_000)
        self._made = 0
        rng = self._rng
        users: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
        for i in range(40):
            name = f"{_FIRST[i % len(_FIRST)]}.{_LAST[(i * 7) % len(_LAST)]}"
            email = f"{name}@{domain}"
            account = {
                "entityRole": "Source",
                "entityType": 2,
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "inst": 0,
                "label": name,
                "pa": email,
                "em": email,
                "saas": 11161,
                "type": "account",
            }
            user = {
                "entityType": 1,
                "id": email,
                "inst": 0,
                "label": name.replace(".", " ").title(),
                "pa": email,
                "em": email,
                "saas": 11161,
                "type": "user",
            }
            users.append((name, email, account, user))
        self._users = users
        self._admins = [f"secops{i}@{domain}" for i in range(1, 4)]
        self._ips = [
            f"{rng.choice((20, 52, 85, 102, 185, 203))}.{rng.randrange(256)}.{rng.randrange(256)}."
            f"{rng.randrange(1, 255)}"
            for _ in range(60)
        ]
        self._ip_entities = {
            ip: {"id": ip, "label": ip, "type": "ip", "triggeredAlert": True} for ip in self._ips
        }
        self._devices = [
            {
                "id": f"{rng.getrandbits(64):016x}",
                "label": f"LAPTOP-{rng.randrange(10**6):06d}",
                "type": "device",
                "deviceType": rng.choice(("DESKTOP", "MOBILE", "TABLET")),
            }
            for _ in range(25)
        ]
        self._services = {
            sid: {"id": sid, "label": label, "type": "service"} for sid, label in SERVICES.items()
        }
        self._policies = {
            t.title: {
                "id": _policy_id(t.title),
                "label": t.title,
                "policyType": t.policy_type,
                "type": "policyRule",
            }
            for t in TEMPLATES
        }
        self._countries = [{"id": code, "label": name, "type": "country"} for code, name in _COUNTRIES]

    # -- ids -------------------------------------------------------------------------------------------------

    def _object_id(self, timestamp_ms: int) -> str:
        """A MongoDB-ObjectId-shaped `_id`: 4-byte seconds, 5-byte machine, 3-byte counter (24 hex)."""
        self._counter = (self._counter + 1) & 0xFFFFFF
        return f"{(timestamp_ms // 1000) & 0xFFFFFFFF:08x}{self._machine:010x}{self._counter:06x}"

    # -- one alert -------------------------------------------------------------------------------------------

    def make(self, timestamp_ms: int) -> dict[str, Any]:
        """One alert created at `timestamp_ms`. The first alerts cycle through every enum value on purpose."""
        rnd = self._rng.random  # rng.choice/randrange are ~5x slower; this keeps 20k alerts well under 1 s

        def pick(seq: Sequence[_T]) -> _T:
            return seq[int(rnd() * len(seq))]

        n = self._made
        self._made += 1
        tpl = TEMPLATES[n % len(TEMPLATES)] if n < len(TEMPLATES) else pick(TEMPLATES)

        severity = n % 4 if n < 4 else pick(tpl.severities)
        if n < 6:
            resolution = n
        else:
            r = rnd()
            resolution = 0 if r < 0.6 else pick((1, 2, 3, 3, 4, 4, 4, 5, 5))
        if resolution == 0:
            status = n % 2 if n < 8 else (0 if rnd() < 0.55 else 1)
        else:
            status = 2 if rnd() < 0.85 else 1
        stories = list(tpl.stories)
        intents = list(tpl.intents)
        if n < len(INTENTS) and n not in intents:
            intents.append(n)
        story_keys = tuple(STORIES)
        if n < len(story_keys) and story_keys[n] not in stories:
            stories.append(story_keys[n])

        name, _email, account, user = pick(self._users)
        ip = pick(self._ips)
        service_id = pick(tpl.services)
        country = pick(self._countries)
        file_name = pick(_FILES)
        count = 12 + int(rnd() * 2488)
        entities: list[dict[str, Any]] = [
            account,
            self._services[service_id],
            self._policies[tpl.title],
            self._ip_entities[ip],
            user,
        ]
        if tpl.with_device or n < 2:
            entities.append(pick(self._devices))
        if tpl.with_file:
            entities.append({"id": f"{self._rng.getrandbits(96):024x}", "label": file_name, "type": "file"})
        if tpl.with_country:
            entities.append(country)

        params = {
            "user": name,
            "ip": ip,
            "country": country["label"],
            "app": SERVICES[service_id],
            "count": count,
            "file": file_name,
        }
        alert_id = self._object_id(timestamp_ms)
        self._id_value += 1
        alert: dict[str, Any] = {
            "_id": alert_id,
            "contextId": self._context_id,
            "timestamp": timestamp_ms,
            "title": tpl.title,
            "description": tpl.description.format(**params),
            "descriptionTemplate": {"template": "ALERT_" + tpl.policy_type, "parameters": params},
            "isMarkdown": tpl.markdown,
            "isPreview": False,
            "isSystemAlert": tpl.system,
            "idValue": self._id_value,
            "statusValue": status,
            "severityValue": severity,
            "resolutionStatusValue": resolution,
            "stories": stories,
            "intent": intents,
            "evidence": [
                {"title": {"template": "ALERTS_MITRE_TACTIC", "parameters": {"tactic": INTENTS[intents[0]]}}},
                {
                    "title": {
                        "template": "ALERTS_ENTITY_ACTIVITY",
                        "parameters": {"user": name, "ip": ip, "count": count},
                    }
                },
            ],
            "threatScore": 1 + int(rnd() * 99),
            "threatScoreReasoning": [
                {
                    "template": "THREAT_SCORE_REASON_UNUSUAL_ACTIVITY",
                    "parameters": {"score": severity * 20 + 10},
                }
            ],
            "entities": entities,
            "comment": "",
            "URL": f"{self._portal}/#/alerts/{alert_id}",
        }
        if resolution != 0:
            alert["comment"] = pick(_COMMENTS)
            alert["handledByUser"] = pick(self._admins)
            alert["resolveTime"] = iso_ms(timestamp_ms + 60_000 + int(rnd() * 3 * 86_400_000))
        return alert

    # -- many alerts -----------------------------------------------------------------------------------------

    def batch(
        self, count: int, *, start_ms: int, end_ms: int, burst_share: float = 0.3
    ) -> list[dict[str, Any]]:
        """`count` alerts spread over [start_ms, end_ms], sorted by timestamp.

        About `burst_share` of them arrive in bursts of 5-50 alerts sharing one millisecond.
        """
        if count < 0 or end_ms < start_ms:
            raise ValueError("count must be >= 0 and end_ms >= start_ms")
        rng = self._rng
        mean_burst = (BURST_MIN + BURST_MAX) / 2
        # Chance that a draw starts a burst, chosen so bursts hold about `burst_share` of all alerts.
        p_burst = burst_share / (mean_burst * (1 - burst_share) + burst_share) if burst_share < 1 else 1.0
        stamps: list[int] = []
        while len(stamps) < count:
            ts = rng.randint(start_ms, end_ms)
            size = rng.randint(BURST_MIN, BURST_MAX) if rng.random() < p_burst else 1
            stamps.extend([ts] * min(size, count - len(stamps)))
        stamps.sort()
        return [self.make(ts) for ts in stamps]

    def at(self, count: int, timestamp_ms: int) -> list[dict[str, Any]]:
        """`count` alerts all created in the same millisecond (a burst, or "arriving now")."""
        return [self.make(timestamp_ms) for _ in range(count)]
