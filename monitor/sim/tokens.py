"""OAuth client-credentials tokens of the simulated org: issued, checked, expired and revoked.

Channels die with the token that created them, so whoever owns channels registers a death
listener; it is called once per token, when the token is revoked or found expired.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from monitor.clock import Clock
from monitor.sim.settings import SimSettings


@dataclass(slots=True)
class Token:
    value: str
    client_id: str
    issued_ms: int
    expires_ms: int
    revoked: bool = False
    dead: bool = False  # death listeners have been told


DeathListener = Callable[[Token, str], None]


class Tokens:
    """Every token issued by the simulator, by value."""

    def __init__(self, settings: SimSettings, clock: Clock, rng: random.Random) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._secrets = {c.client_id: c.client_secret for c in settings.clients}
        self._tokens: dict[str, Token] = {}
        self._listeners: list[DeathListener] = []
        self.lifetime_s = settings.token_lifetime_s

    def issue(self, client_id: str, client_secret: str) -> Token | None:
        """A new token for valid credentials; None when they are wrong."""
        expected = self._secrets.get(client_id)
        if expected is None or not secrets.compare_digest(expected, client_secret):
            return None
        now = self._clock.now_ms()
        value = "sim-" + "".join(self._rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=40))
        token = Token(value, client_id, now, now + self.lifetime_s * 1000)
        self._tokens[value] = token
        return token

    def check(self, value: str) -> Token | None:
        """The live token with this value; None when unknown, expired or revoked."""
        token = self._tokens.get(value)
        if token is None or token.revoked:
            return None
        if self._clock.now_ms() >= token.expires_ms:
            self._die(token, "expired")
            return None
        return token

    def get(self, value: str) -> Token | None:
        """The token with this value, live or not."""
        return self._tokens.get(value)

    def revoke(self, value: str) -> None:
        token = self._tokens.get(value)
        if token is not None and not token.revoked:
            token.revoked = True
            self._die(token, "revoked")

    def revoke_client(self, client_id: str | None = None) -> int:
        """Revoke every live token of a client (of every client when None); returns how many."""
        live = [
            t
            for t in self._tokens.values()
            if not t.revoked and (client_id is None or t.client_id == client_id)
        ]
        for token in live:
            self.revoke(token.value)
        return len(live)

    def expire(self, value: str) -> None:
        """Make a token expire now."""
        token = self._tokens.get(value)
        if token is not None:
            token.expires_ms = min(token.expires_ms, self._clock.now_ms())
            self.sweep()

    def sweep(self) -> None:
        """Tell the death listeners about every token that has expired since the last sweep."""
        now = self._clock.now_ms()
        for token in list(self._tokens.values()):
            if not token.dead and now >= token.expires_ms:
                self._die(token, "expired")

    def next_expiry_ms(self) -> int | None:
        """When the next live token expires, for the sweeper's timer."""
        live = [t.expires_ms for t in self._tokens.values() if not t.dead]
        return min(live) if live else None

    def on_death(self, listener: DeathListener) -> None:
        self._listeners.append(listener)

    def live(self) -> list[Token]:
        return [t for t in self._tokens.values() if not t.dead]

    def _die(self, token: Token, reason: str) -> None:
        if token.dead:
            return
        token.dead = True
        for listener in list(self._listeners):
            listener(token, reason)
