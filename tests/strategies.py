"""Hypothesis strategies for rooms, shared by the storage tests."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from storage import Filter, Member, SerializedRoom, Unwatched, hash_password

# Any Unicode a browser can send, including lone surrogates' neighbours, emoji and control-free text.
room_names = st.text(min_size=1, max_size=120).filter(lambda name: name.strip() != "")
user_names = st.text(min_size=1, max_size=30)
media_ids = st.text(min_size=1, max_size=40)
millis = st.integers(min_value=0, max_value=2**53)
# One scrypt hash reused: hashing is deliberately slow.
PASSWORD_HASH = hash_password("hunter2")


@st.composite
def rooms(draw: st.DrawFn, name: st.SearchStrategy[str] = room_names) -> SerializedRoom:
    users = draw(st.lists(user_names, max_size=5, unique=True))
    items = draw(st.lists(media_ids, max_size=8, unique=True))
    ratings = {}
    for item in items:
        raters = draw(st.lists(st.sampled_from(users), unique=True)) if users else []
        if raters:
            ratings[item] = [(user, draw(st.sampled_from(["like", "dislike"])), draw(millis)) for user in raters]
    return SerializedRoom(
        room_name=draw(name),
        join_code=draw(st.none() | st.text(alphabet="23456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=6, max_size=6)),
        password_hash=draw(st.none() | st.just(PASSWORD_HASH)),
        sort=draw(st.sampled_from(["random", "rating"])),
        sort_order=draw(st.none() | st.sampled_from(["random", "newest", "oldest", "rating"])),
        room_type=draw(st.sampled_from(["standard", "unanimous", "solo"])),
        match_threshold=draw(st.integers(min_value=2, max_value=10)),
        options=draw(st.lists(st.just("EndOnFirstMatch"), max_size=1)),
        filters=[
            Filter(key=key, operator=op, value=values)
            for key, op, values in draw(
                st.lists(st.tuples(st.text(max_size=10), st.sampled_from(["=", "!="]), st.lists(st.text(max_size=10))))
            )
        ],
        libraries=draw(st.lists(st.text(max_size=10), max_size=3)),
        created_at=draw(st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1))),
        creator_plex_user_id=draw(st.text(max_size=10)),
        creator_plex_username=draw(st.text(max_size=10)),
        members={user: Member(joined_at=draw(millis)) for user in users},
        ratings=ratings,
        user_progress={user: sum(1 for triples in ratings.values() for t in triples if t[0] == user) for user in users},
        media_ids=draw(st.none() | st.just(items)),
        media_seed=draw(st.none() | st.integers(min_value=0, max_value=2**63 - 1)),
        matches={item: draw(millis) for item in draw(st.lists(st.sampled_from(items), unique=True))} if items else {},
        unwatched=draw(
            st.none()
            | st.builds(Unwatched, people=st.lists(st.text(max_size=20), max_size=3).map(tuple), members=st.booleans())
        ),
    )
