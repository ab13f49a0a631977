"""Every setting of the simulator, with Genesys's documented behaviour or best guess as default.

Items marked UNCONFIRMED in GENESYS.md are settings here, so that a test can check the monitor
against each plausible behaviour, and so that the simulator can be corrected in one place when
Genesys's real behaviour becomes known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# How REST payloads spell `systemPresence` outside the definitions API. UNCONFIRMED: third-party
# samples show "Available" and "On Queue"; notifications always use "ON_QUEUE".
RestPresenceCasing = Literal["spaced", "upper", "pascal"]


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """One OAuth client (client-credentials grant) of the simulated org."""

    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class SimSettings:
    """The simulated org, its limits and its UNCONFIRMED behaviours."""

    # --- the org --------------------------------------------------------------------------------
    agents: int = 100
    seed: int = 1
    divisions: int = 3
    queues: int = 8
    # Share of agents that get stuck at some point in a day (off queue too long, not responding,
    # a ghost interaction), for the stuck-agent rules to find.
    stuck_fraction: float = 0.05
    clients: tuple[OAuthClient, ...] = field(
        default_factory=lambda: (OAuthClient("sim-client", "sim-secret"),)
    )

    # --- time -----------------------------------------------------------------------------------
    # Simulated time runs `time_factor` times faster than real time, starting at `start_ms`
    # (None: now). Every timestamp and every interval below is in simulated time.
    time_factor: float = 1.0
    start_ms: int | None = None
    # The org's time zone (IANA name): agents' shifts follow its local time and its weekends.
    timezone: str = "UTC"

    # --- OAuth ----------------------------------------------------------------------------------
    token_lifetime_s: int = 86_400  # Genesys's default when the client sets none

    # --- rate limiting --------------------------------------------------------------------------
    # 300 requests a minute per token (confirmed); 0 turns rate limiting off.
    requests_per_minute: int = 300

    # --- users ----------------------------------------------------------------------------------
    users_max_page_size: int = 500  # UNCONFIRMED; larger requests are refused with 400
    users_result_cap: int = 10_000  # pageNumber*pageSize beyond this is a 400
    users_cap_applies_to_active: bool = True  # UNCONFIRMED: documented for inactive only
    search_max_page_size: int = 100  # UNCONFIRMED
    search_result_cap: int = 10_000  # UNCONFIRMED: a deep-paging window like the listing's
    queue_members_max_page_size: int = 100  # larger requests are clamped, not refused
    # Expands are "best effort": the share of expanded users returned without the expansion.
    expand_omit_rate: float = 0.0

    # --- presence -------------------------------------------------------------------------------
    rest_presence_casing: RestPresenceCasing = "spaced"
    bulk_presence_max_ids: int = 50
    bulk_presence_over_limit: Literal["error", "truncate"] = "error"  # UNCONFIRMED
    bulk_presence_put_max: int = 50  # UNCONFIRMED
    # Secondary (org-defined) presences per system presence, e.g. "Lunch" under MEAL.
    custom_definitions: bool = True

    # --- notifications --------------------------------------------------------------------------
    max_channels: int = 20
    max_topics: int = 1000
    max_combined_topic_length: int = 200
    channel_ttl_s: int = 86_400
    subscribe_extends_expiry: bool = True  # UNCONFIRMED
    heartbeat_interval_s: float = 30.0  # UNCONFIRMED (observed ~30 s)
    heartbeat_message: str = "WebSocket Heartbeat"
    pong_message: str = "pong"  # UNCONFIRMED
    socket_closing_grace_s: float = 60.0
    # What an evicted (21st-channel) or expired channel's socket receives before it is closed;
    # None sends nothing. UNCONFIRMED: a third-party client handles {"result":"404"}.
    eviction_notice: str | None = '{"result":"404"}'
    # Sockets of a channel whose token expired or was revoked are closed. UNCONFIRMED.
    channels_die_with_token: bool = True
    delete_subscriptions_status: Literal[200, 204] = 204  # UNCONFIRMED
    # Topics for these agent ids are rejected as if the client lacked permission.
    forbidden_agent_ids: frozenset[str] = frozenset()
    rejection_reason: str = "Missing permission(s) to subscribe to topic"  # UNCONFIRMED
    # A malformed or unknown topic: "reject" marks it Rejected, "error" fails the request with 400.
    unknown_topic: Literal["reject", "error"] = "reject"  # UNCONFIRMED

    def __post_init__(self) -> None:
        problems = []
        if self.agents < 0:
            problems.append("agents must be >= 0")
        if self.time_factor <= 0:
            problems.append("time_factor must be positive")
        if not self.clients:
            problems.append("at least one OAuth client is needed")
        if not 0 <= self.stuck_fraction <= 1 or not 0 <= self.expand_omit_rate <= 1:
            problems.append("stuck_fraction and expand_omit_rate are shares between 0 and 1")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone {self.timezone!r} is not a known IANA time zone")
        if problems:
            raise ValueError("; ".join(problems))
