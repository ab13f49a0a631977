"""The simulator's topic grammar, as properties over any combination of suffixes, case and length."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.sim.topics import SUFFIXES, TopicError, parse_topic

_agent_ids = st.uuids().map(str)
# CI machines are shared; a slow example is not a failure of the grammar.
_untimed = settings(deadline=None)


@st.composite
def _any_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))


_suffixes = st.sampled_from(SUFFIXES).flatmap(_any_case)


@_untimed
@given(agent=_agent_ids, suffix=_suffixes, prefix=_any_case("v2.users."), upper=st.booleans())
def test_single_topics_parse_in_any_case(agent: str, suffix: str, prefix: str, upper: bool) -> None:
    """`v2.users.{id}.{suffix}` parses in any case; it is delivered under its own spelling."""
    name = f"{prefix}{agent.upper() if upper else agent}.{suffix}"
    topic = parse_topic(name, max_combined_length=200)
    assert topic.agent_id == agent
    assert topic.parts == ((next(s for s in SUFFIXES if s.lower() == suffix.lower()), name),)
    assert not topic.combined


@_untimed
@given(
    agent=_agent_ids,
    suffixes=st.lists(_suffixes, min_size=1, max_size=30),
    limit=st.integers(min_value=40, max_value=400),
)
def test_combined_topics_parse_within_the_length_limit(
    agent: str, suffixes: list[str], limit: int
) -> None:
    """A combined topic of any suffixes parses iff it fits the limit, into its distinct suffixes."""
    name = f"v2.users.{agent}?" + "&".join(suffixes)
    if len(name) > limit:
        with pytest.raises(TopicError, match=f"at most {limit}"):
            parse_topic(name, max_combined_length=limit)
        return
    topic = parse_topic(name, max_combined_length=limit)
    first_spelling: dict[str, str] = {}
    for suffix in suffixes:
        first_spelling.setdefault(suffix.lower(), suffix)
    assert topic.combined
    assert topic.name == name
    assert [canonical.lower() for canonical, _ in topic.parts] == list(first_spelling)
    assert [delivered for _, delivered in topic.parts] == [
        f"v2.users.{agent}.{spelling}" for spelling in first_spelling.values()
    ]


@_untimed
@given(
    agent=_agent_ids,
    good=st.lists(_suffixes, max_size=3),
    bad=st.text(alphabet="abcdefgnrstxyzADEPRS_-0", max_size=14),
)
def test_unknown_suffixes_are_refused(agent: str, good: list[str], bad: str) -> None:
    """A combined or single topic with any suffix outside the grammar is a TopicError."""
    if bad.lower() in {s.lower() for s in SUFFIXES}:
        return
    for name in (f"v2.users.{agent}?" + "&".join([*good, bad]), f"v2.users.{agent}.{bad}"):
        with pytest.raises(TopicError):
            parse_topic(name, max_combined_length=1000)


@_untimed
@given(name=st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_topic_error(name: str) -> None:
    """Any text either parses into a user topic or raises TopicError, nothing else."""
    try:
        topic = parse_topic(name, max_combined_length=200)
    except TopicError:
        return
    assert uuid.UUID(topic.agent_id)
    assert topic.parts


@pytest.mark.parametrize(
    "name",
    [
        "v2.users.123.presence",
        "v2.users.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a3.presence",
        "v2.users.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a3g.presence",
        "v2.routing.queues.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a31.presence",
        "v2.users.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a31",
        "v2.users.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a31?",
        "v2.users.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a31?presence&",
        "v2.users.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a31.station",
        "v2.users.0b5f0c33-7a9f-4f1e-9b46-9e5e8e2a4a31.presence.extra",
        "v2.system.socket_closing",
        "",
    ],
)
def test_malformed_topics(name: str) -> None:
    """Malformed ids, empty suffix lists, unknown suffixes and other families are refused."""
    with pytest.raises(TopicError):
        parse_topic(name, max_combined_length=200)
