"""Whether a reply's actions may be taken: once per transcript, fresh, live, rate-limited.

Pure logic (no I/O, no threads): the daemon asks `admit` when a transcript arrives and
`filter_actions` when its reply is ready.

- A transcript id is acted on once: the last `remember_ids` ids are kept (bounded memory), a
  repeated id is refused at once, before it costs an answer.
- A retained transcript is not a live command (it would be replayed at every start): refused.
- A transcript that waited longer than `max_age_s` between arriving and being answered is stale:
  its reply is published, its actions are not.
- At most `per_kind_limit` actions of one kind (call, navigate, calendar) per `per_kind_window_s`.
- A contact that is a dialer code (`*#06#`, `#31#...`, pauses `,` `;`) is never called.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge_slm.events import Action, Transcript

# MMI/USSD and supplementary-service codes use * and #; `,` `;` `p` `w` are dial pauses/waits that
# smuggle extra digits after a real number; `%23` is an URL-encoded `#`.
_DIALER_CODE = re.compile(r"[*#,;]|%23|^\s*tel:|^\s*ussd:", re.IGNORECASE)


def is_dialer_code(contact: str) -> bool:
    return bool(_DIALER_CODE.search(contact))


@dataclass
class GuardCounters:
    duplicate_ids: int = 0
    retained: int = 0
    stale: int = 0
    rate_limited: int = 0
    dialer_codes: int = 0
    allowed: int = 0


@dataclass
class ActionGuard:
    max_age_s: float = 20.0
    per_kind_limit: int = 5
    per_kind_window_s: float = 60.0
    remember_ids: int = 4096
    clock: Callable[[], float] = time.time
    counters: GuardCounters = field(default_factory=GuardCounters)

    def __post_init__(self) -> None:
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._recent: dict[str, collections.deque[float]] = {}

    def admit(self, transcript: Transcript, retained: bool = False) -> str:
        """At arrival. Returns "" to answer it, else why it is refused (it is then not answered)."""
        if retained:
            self.counters.retained += 1
            return "retained transcript: not a live command"
        if transcript.id in self._seen:
            self._seen.move_to_end(transcript.id)
            self.counters.duplicate_ids += 1
            return f"duplicate transcript id {transcript.id!r}"
        self._seen[transcript.id] = None
        while len(self._seen) > self.remember_ids:
            self._seen.popitem(last=False)
        return ""

    def filter_actions(self, transcript: Transcript, actions: Sequence[Action]) -> tuple[tuple[Action, ...], str]:
        """When the reply is ready: the actions that may be published, and why others were not."""
        if not actions:
            return (), ""
        now = self.clock()
        if transcript.received_ts > 0 and now - transcript.received_ts > self.max_age_s:
            self.counters.stale += 1
            return (), f"the command is {now - transcript.received_ts:.0f} s old"
        allowed: list[Action] = []
        reason = ""
        for action in actions:
            if action.kind == "call" and is_dialer_code(action.payload.get("contact", "")):
                self.counters.dialer_codes += 1
                reason = "that is a dialer code, not a contact"
                continue
            recent = self._recent.setdefault(action.kind, collections.deque())
            while recent and now - recent[0] > self.per_kind_window_s:
                recent.popleft()
            if len(recent) >= self.per_kind_limit:
                self.counters.rate_limited += 1
                reason = f"too many {action.kind} actions in the last {self.per_kind_window_s:.0f} s"
                continue
            recent.append(now)
            allowed.append(action)
            self.counters.allowed += 1
        return tuple(allowed), reason


def refused_reply_text(reason: str) -> str:
    """What the driver hears instead of "Calling ..." when the action was not taken."""
    return f"I did not do that: {reason}."


__all__ = ["ActionGuard", "GuardCounters", "is_dialer_code", "refused_reply_text"]
