"""A channel slot: one place in the pool, with its agents, its Genesys channel and its socket,
kept delivering through everything Genesys does to a channel.

The slot's control loop (`Slot.run`) owns every change of channel and socket; the socket's reader
task and the watchdog only report what they see as signals. That keeps each decision in one place:

- `socket_closing`: make before break. A new socket to the same channel (the server then drops the
  old one; subscriptions belong to the channel and persist), a snapshot, then the old socket is
  closed. The old socket is read until it closes, so nothing already sent on it is lost; the
  overlap's duplicates are dropped by the tracker.
- channel expiry approaching, or a new OAuth token (channels die with the token that made them):
  a new channel, subscribed, connected and reconciled before the old socket is closed. Only when
  the client already has 20 connected channels, and a 21st would evict a live one, is the old
  socket closed first, and the short gap recorded and covered by a snapshot.
- a dropped socket, a watchdog timeout (no heartbeat, no pong), an evicted or expired channel:
  the gap is recorded, the slot reconnects with jittered backoff (to the same channel when it still
  exists, else to a new one) and reconciles from a snapshot. A failing snapshot is retried on its
  own, with the new socket kept open and delivering.
- a roster change: the subscription is replaced and the newcomers are read from a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from monitor.clock import Clock
from monitor.config import ChannelSettings
from monitor.core.backoff import Backoff
from monitor.core.model import Gap, Source, Update
from monitor.core.topics import ChannelSlot, slot_topics
from monitor.core.wire import (
    ChannelGone,
    Heartbeat,
    Pong,
    SocketClosing,
    SystemMessage,
    Updates,
    decode,
)
from monitor.errors import AuthError, DecodeError, GenesysError, NotFound
from monitor.genesys.api import GenesysApi
from monitor.genesys.auth import TokenSource
from monitor.genesys.payloads import ChannelInfo
from monitor.genesys.socket import Socket
from monitor.metrics import Metrics
from monitor.reconcile import Reconciler
from monitor.recorder import Recorder

log = structlog.get_logger(__name__)

MAX_CHANNELS = 20


@dataclass
class PoolClient:
    """One OAuth client as the pool sees it: its API, its token, and its channels' bookkeeping."""

    index: int
    api: GenesysApi
    tokens: TokenSource
    max_channels: int = MAX_CHANNELS
    connected: set[ChannelSlot] = field(default_factory=set)
    rollover_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# How far behind a socket may be, at a planned switch to a new one, before what it had not
# delivered is recorded as a gap: less is the ordinary delay of a frame on its way, or a
# difference between Genesys's clock and ours.
_BEHIND_MS = 5000


@dataclass(frozen=True)
class SlotDeps:
    recorder: Recorder
    reconciler: Reconciler
    metrics: Metrics
    record_gap: Callable[[Gap], None]
    settings: ChannelSettings
    combined: bool
    clock: Clock
    rng: random.Random


class Slot:
    """One channel slot of the pool."""

    def __init__(
        self, key: ChannelSlot, agents: frozenset[str], client: PoolClient, deps: SlotDeps
    ) -> None:
        self.key = key
        self.label = f"{key.client}/{key.number}"
        self.agents = agents
        self.client = client
        self._d = deps
        self._clock = deps.clock
        self._signals: asyncio.Queue[tuple[str, Socket | None]] = asyncio.Queue()
        self._channel: ChannelInfo | None = None
        self._channel_token: str | None = None
        self._socket: Socket | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._subscribed: frozenset[str] = frozenset()
        self.rejected: dict[str, str] = {}
        self._backoff = Backoff(deps.settings.backoff_base_s, deps.settings.backoff_cap_s, deps.rng)
        self.ever_up = asyncio.Event()
        # Set once the first subscription is in, just before the first snapshot: the pool waits for
        # every initial slot to get here, then reads one snapshot for all of them.
        self.subscribed_once = asyncio.Event()
        self.up = False
        self.down_since_ms: int | None = None
        self._down_reason = "start"
        self._up_since = 0.0
        self._rollover_not_before_ms = 0
        self._invalid_logged_ms = -60_000
        self._invalid_suppressed = 0
        labels = (str(key.client), str(key.number))
        self._up_gauge = deps.metrics.channel_up.labels(*labels)
        self._last_frame_gauge = deps.metrics.channel_last_frame.labels(*labels)
        self._frames = {
            name: deps.metrics.frames.labels(name)
            for name in ("update", "heartbeat", "pong", "system", "invalid", "other")
        }
        self._up_gauge.set(0)

    # --- what the pool calls ---------------------------------------------------------------------

    def set_agents(self, agents: frozenset[str]) -> None:
        self.agents = agents
        self._signals.put_nowait(("resubscribe", None))

    def token_changed(self) -> None:
        self._signals.put_nowait(("token", None))

    def stop(self) -> None:
        self._signals.put_nowait(("stop", None))

    @property
    def channel_id(self) -> str | None:
        return self._channel.id if self._channel else None

    # --- the control loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the slot delivering until stopped; AuthError ends it (and the daemon)."""
        watchdog = asyncio.create_task(self._watchdog(), name=f"slot-{self.label}-watchdog")
        try:
            await self._recover("start", planned=True)
            while True:
                signal, source = await self._next_signal()
                if source is not None and source is not self._socket:
                    continue  # from a socket already replaced
                if signal == "stop":
                    return
                await self._handle(signal)
        finally:
            watchdog.cancel()
            await self._close_all()
            self._set_down("stopped")

    def _rollover_due(self) -> tuple[int, str] | None:
        """When the channel must be replaced, and why: before it expires, or at once when it was
        made with a token that has since been replaced (channels die with their token)."""
        if self._channel is None or self._socket is None:
            return None
        due = self._channel.expires_ms - int(self._d.settings.rollover_before_expiry_s * 1000)
        reason = "expiry"
        current = self._current_token()
        if current is not None and current != self._channel_token:
            due, reason = min(due, self._clock.now_ms()), "token"
        return max(due, self._rollover_not_before_ms), reason

    async def _next_signal(self) -> tuple[str, Socket | None]:
        due = self._rollover_due()
        wait = None if due is None else max(0.0, (due[0] - self._clock.now_ms()) / 1000)
        if not self._signals.empty() or wait is None or wait > 0:
            try:
                async with self._clock.timeout(wait):
                    return await self._signals.get()
            except TimeoutError:
                pass
        assert due is not None
        return f"rollover:{due[1]}", None

    async def _handle(self, signal: str) -> None:
        if signal == "socket_closing":
            await self._reconnect_same_channel()
        elif signal.startswith("rollover:"):
            await self._roll_to_new_channel(signal.removeprefix("rollover:"))
        elif signal == "token":
            return  # _next_signal sees the new token and schedules the rollover
        elif signal == "resubscribe":
            await self._resubscribe()
        else:  # closed, dead, gone, revoked: the socket is lost
            self._d.metrics.reconnects.labels(signal).inc()
            await self._recover(signal)

    # --- establishing ----------------------------------------------------------------------------

    async def _recover(self, reason: str, *, planned: bool = False) -> None:
        """Bring the slot up after a loss (or at start): reconnect, resubscribe, reconcile."""
        gone = reason in ("gone", "revoked")
        old = self._socket
        self._socket = None
        if old is not None:
            await old.close()
        was_up = self.up
        # The gap begins where the lost socket stopped delivering, not when this loop got to it:
        # it may have been busy (a snapshot in a 429 storm) while events went unsent.
        self._set_down(reason, None if old is None else old.through_ms)
        if was_up and self._clock.monotonic() - self._up_since >= self._d.settings.healthy_after_s:
            self._backoff.reset()
        if was_up and not planned:
            log.warning("channel_down", slot=self.label, reason=reason, channel=self.channel_id)
            await self._clock.sleep(self._backoff.next())
        while True:
            try:
                if (
                    gone
                    or self._channel is None
                    or not await self.client.api.channel_exists(self._channel.id)
                ):
                    await self._new_channel()
                    gone = False
                socket = await self._open(self._channel_info())
                if self._subscribed != self.agents:
                    await self._subscribe(self._channel_info(), self.agents)
                # From here events flow again; the snapshot below covers what came before.
                delivering_ms = self._clock.now_ms()
                self.subscribed_once.set()
            except AuthError:
                raise
            except NotFound:
                gone = True  # the channel vanished between HEAD and connect
                await self._discard_socket()
                await self._pause("channel_gone")
                continue
            except (GenesysError, DecodeError) as exc:
                await self._discard_socket()
                log.warning("channel_connect_failed", slot=self.label, error=str(exc))
                await self._pause(reason)
                continue
            await self._reconcile_patiently()
            self._set_up(socket, delivering_ms)
            return

    async def _reconcile_patiently(self) -> None:
        """Read the slot's agents until a snapshot succeeds. The new socket stays open meanwhile:
        its events are recorded live, and only what came before it needs the snapshot. (Closing
        it to start over would open another unwatched stretch, and push the snapshot further
        from the gap it covers.) If the socket drops meanwhile, its reader signals the loss,
        which is handled once this slot is up."""
        while True:
            try:
                await self._d.reconciler.reconcile(self.agents)
            except AuthError:
                raise
            except (GenesysError, DecodeError) as exc:
                log.warning("snapshot_failed", slot=self.label, error=str(exc))
                await self._pause("snapshot")
            else:
                return

    async def _discard_socket(self) -> None:
        if self._socket is not None:
            await self._socket.close()
            self._socket = None

    async def _pause(self, reason: str) -> None:
        delay = self._backoff.next()
        log.info("channel_retry", slot=self.label, reason=reason, in_s=round(delay, 2))
        await self._clock.sleep(delay)

    async def _new_channel(self) -> None:
        self._channel = await self.client.api.create_channel()
        self._channel_token = self._current_token()
        self._subscribed = frozenset()
        log.info("channel_created", slot=self.label, channel=self._channel.id)

    def _channel_info(self) -> ChannelInfo:
        assert self._channel is not None
        return self._channel

    def _current_token(self) -> str | None:
        token = self.client.tokens.current
        return token.value if token else None

    async def _open(self, channel: ChannelInfo) -> Socket:
        socket = await Socket.open(
            channel.connect_uri, self._clock, self._d.settings.open_timeout_s
        )
        self._socket = socket
        task = asyncio.create_task(self._read(socket), name=f"slot-{self.label}-reader")
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)
        return socket

    async def _subscribe(self, channel: ChannelInfo, agents: frozenset[str]) -> None:
        topics = slot_topics(agents, self._d.combined)
        result = await self.client.api.put_subscriptions(channel.id, topics)
        self._subscribed = agents
        self.rejected = dict(result.rejected)
        if result.rejected:
            sample = dict(list(result.rejected.items())[:3])
            log.warning(
                "topics_rejected", slot=self.label, count=len(result.rejected), sample=sample
            )

    def _set_up(
        self, socket: Socket, delivering_ms: int | None = None, old: Socket | None = None
    ) -> None:
        """The slot delivers again: since `delivering_ms` (subscribed on an open socket), with
        what came before read by a snapshot. `old`: the socket a planned switch replaces."""
        end = self._clock.now_ms() if delivering_ms is None else delivering_ms
        if self.up and old is not None:
            # A planned switch (socket_closing, rollover). If the old socket was lost before the
            # new one delivered (its loss signal waited for the switch, and is moot now), or was
            # behind, what it had not delivered went with it; the snapshot just read covers it.
            lost = old.ended if old.ended_ms is not None and old.ended_ms < end else None
            if lost or old.lag_ms > _BEHIND_MS:
                start = old.through_ms
                self._record_gap(start, max(end, start), lost or "behind")
        self._socket = socket
        self.up = True
        self._up_since = self._clock.monotonic()
        self.client.connected.add(self.key)
        self._up_gauge.set(1)
        if self.down_since_ms is not None and self.ever_up.is_set():
            self._record_gap(self.down_since_ms, max(end, self.down_since_ms), self._down_reason)
        self.down_since_ms = None
        self.ever_up.set()

    def _set_down(self, reason: str, since_ms: int | None = None) -> None:
        if self.up or self.down_since_ms is None:
            # Not from now but from where the lost socket stopped delivering (`since_ms`): events
            # queued for a socket that was behind are lost with it.
            now = self._clock.now_ms()
            self.down_since_ms = now if since_ms is None else min(since_ms, now)
            self._down_reason = reason
        self.up = False
        self.client.connected.discard(self.key)
        self._up_gauge.set(0)

    def _record_gap(self, start_ms: int, end_ms: int, reason: str) -> None:
        seconds = max(0, end_ms - start_ms) / 1000
        log.info("gap_recorded", slot=self.label, reason=reason, seconds=round(seconds, 3))
        self._d.metrics.gaps.inc()
        self._d.metrics.gap_seconds.inc(seconds)
        self._d.record_gap(Gap(self.label, start_ms, end_ms, reason, tuple(sorted(self.agents))))

    # --- planned changes -------------------------------------------------------------------------

    async def _reconnect_same_channel(self) -> None:
        """socket_closing: a new socket first; the server then drops the old one."""
        old = self._socket
        if old is None or old.ended is not None:
            return  # lost already: the loss's own signal follows, and recovery covers it
        # The channel's subscriptions carry over, and the server sends what it queued on the old
        # socket before closing it: the old socket delivers until the new one takes over.
        delivering_ms = self._clock.now_ms()
        try:
            await self._open(self._channel_info())
            await self._d.reconciler.reconcile(self.agents)
        except (GenesysError, DecodeError) as exc:
            # Keep reading the old socket; when the server closes it, recovery starts.
            log.warning("rollover_failed", slot=self.label, error=str(exc))
            if self._socket is not old:
                await self._discard_socket()
            self._socket = old
            return
        self._d.metrics.rollovers.labels("socket_closing").inc()
        assert self._socket is not None
        self._set_up(self._socket, delivering_ms, old)
        await old.close()

    async def _roll_to_new_channel(self, reason: str) -> None:
        """Expiry or a new token: a new channel before the old socket goes, when there is room."""
        async with self.client.rollover_lock:
            if len(self.client.connected | {self.key}) >= self.client.max_channels:
                # No spare channel: a 21st channel would evict a live one. Break, then make; the
                # old channel, now without a socket, is the one Genesys evicts.
                log.info("rollover_without_spare", slot=self.label, reason=reason)
                self._channel = None
                await self._recover(f"rollover_{reason}", planned=True)
                self._d.metrics.rollovers.labels(reason).inc()
                return
            old = self._socket
            old_state = (self._channel, self._channel_token, self._subscribed)
            try:
                await self._new_channel()
                await self._open(self._channel_info())
                await self._subscribe(self._channel_info(), self.agents)
                delivering_ms = self._clock.now_ms()
                await self._d.reconciler.reconcile(self.agents)
            except (GenesysError, DecodeError) as exc:
                log.warning("rollover_failed", slot=self.label, reason=reason, error=str(exc))
                if self._socket is not old:
                    await self._discard_socket()
                self._socket = old
                self._channel, self._channel_token, self._subscribed = old_state
                # The old channel keeps delivering meanwhile; try again after a pause.
                delay = self._backoff.next()
                self._rollover_not_before_ms = self._clock.now_ms() + int(delay * 1000)
                return
            self._rollover_not_before_ms = 0
            assert self._socket is not None
            self._set_up(self._socket, delivering_ms, old)
            if old is not None:
                await old.close()
            self._d.metrics.rollovers.labels(reason).inc()

    async def _resubscribe(self) -> None:
        """The roster changed: replace the subscription, then read the newcomers."""
        if self._socket is None or self._channel is None or self._subscribed == self.agents:
            return
        added = self.agents - self._subscribed
        try:
            await self._subscribe(self._channel, self.agents)
            await self._d.reconciler.reconcile(added)
        except (GenesysError, DecodeError) as exc:
            log.warning("resubscribe_failed", slot=self.label, error=str(exc))
            self._signals.put_nowait(("closed", self._socket))

    # --- reading and watching --------------------------------------------------------------------

    async def _read(self, socket: Socket) -> None:
        """Hand every frame of `socket` on; report how the socket ended."""
        recorder = self._d.recorder
        clock = self._clock
        signal = "closed"
        try:
            async for batch in socket.batches():
                # The frames of a batch arrived together: one reading of the clock serves all.
                now_ms = clock.now_ms()
                self._last_frame_gauge.set(now_ms / 1000)
                updates, ending = self._sort(socket, batch, now_ms)
                self._note_delivery(socket, updates, now_ms)
                if updates:
                    # Awaiting the writer here is the back-pressure: a full queue stops reading.
                    await recorder.record(updates, Source.LIVE, now_ms)
                if ending is not None:
                    signal = ending
                    return
        finally:
            if signal == "closed":
                log.info("socket_closed", slot=self.label, how=socket.close_reason)
            socket.ended, socket.ended_ms = signal, clock.now_ms()
            self._signals.put_nowait((signal, socket))

    @staticmethod
    def _note_delivery(socket: Socket, updates: list[Update], now_ms: int) -> None:
        """How far behind the socket is, and so up to when it has delivered: Genesys queues a
        socket's frames in order, so the newest event just read tells how old the queue's head
        is. A quiet socket keeps the last lag (heartbeats say nothing of it)."""
        if updates:
            socket.lag_ms = max(0, now_ms - max(u.event_ms for u in updates))
        socket.through_ms = now_ms - socket.lag_ms

    def _sort(
        self, socket: Socket, batch: list[str | bytes], now_ms: int
    ) -> tuple[list[Update], str | None]:
        """Decode a batch of frames: the updates they carry, in order, and how the socket ends
        if one of them ends it (frames after that one are moot)."""
        updates: list[Update] = []
        lag = self._d.metrics.event_lag
        tally = dict.fromkeys(self._frames, 0)
        ending = None
        for text in batch:
            try:
                message = decode(text, now_ms)
            except DecodeError as exc:
                tally["invalid"] += 1
                self._log_invalid(now_ms, str(exc), text)
                continue
            if type(message) is Updates:
                tally["update"] += 1
                lag.observe(max(0, now_ms - message.updates[0].event_ms) / 1000)
                updates += message.updates
            elif type(message) is Heartbeat:
                tally["heartbeat"] += 1
            elif type(message) is Pong:
                tally["pong"] += 1
            elif type(message) is SocketClosing:
                tally["system"] += 1
                self._signals.put_nowait(("socket_closing", socket))
            elif type(message) is ChannelGone:
                tally["system"] += 1
                ending = "gone"
                break
            elif type(message) is SystemMessage:
                tally["system"] += 1
                if message.system_topic_type == "token_revoked":
                    ending = "revoked"
                    break
                if message.system_topic_type == "no_longer_subscribed":
                    self._subscribed = frozenset()
                    self._signals.put_nowait(("resubscribe", socket))
            else:
                tally["other"] += 1
        for name, count in tally.items():
            if count:
                self._frames[name].inc(count)
        return updates, ending

    def _log_invalid(self, now_ms: int, error: str, text: str | bytes) -> None:
        # One line a minute per slot at most: a server sending garbage must not flood the log;
        # the metric counts every frame.
        if now_ms - self._invalid_logged_ms < 60_000:
            self._invalid_suppressed += 1
            return
        log.warning(
            "frame_invalid",
            slot=self.label,
            error=error,
            frame=text[:200],
            suppressed_since_last=self._invalid_suppressed,
        )
        self._invalid_logged_ms = now_ms
        self._invalid_suppressed = 0

    async def _watchdog(self) -> None:
        """No frame for `ping_after_s`: ping; still nothing `pong_timeout_s` later: dead."""
        settings = self._d.settings
        while True:
            socket = self._socket
            if socket is None or not self.up:
                await self._clock.sleep(min(1.0, settings.ping_after_s / 4))
                continue
            quiet = self._clock.monotonic() - socket.last_frame
            if quiet < settings.ping_after_s:
                await self._clock.sleep(settings.ping_after_s - quiet)
                continue
            before = socket.last_frame
            await socket.ping()
            await self._clock.sleep(settings.pong_timeout_s)
            if socket is self._socket and socket.last_frame == before:
                log.warning("channel_silent", slot=self.label, quiet_s=round(quiet, 1))
                self._signals.put_nowait(("dead", socket))
                # Wait for the control loop to replace the socket before watching again.
                while socket is self._socket:
                    await self._clock.sleep(min(1.0, settings.pong_timeout_s))

    async def _close_all(self) -> None:
        if self._socket is not None:
            await self._socket.close()
            self._socket = None
        for task in list(self._readers):
            task.cancel()
        for task in list(self._readers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
