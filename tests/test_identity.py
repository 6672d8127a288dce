"""A person is an identity, not a name: the attacks a typed name allowed, and the honest flows that
replace them (reload, second tab, second device, handing a seat over, removing a member), against
every kind of server (in this event loop, shared in memory, a real process on files, three real
processes on Redis: ``tests/worlds.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from tests.peers import Peer
from tests.worlds import World

pytestmark = pytest.mark.anyio

Worlds = Callable[..., AsyncIterator[World]]
ROOM = "Movie Night"


async def person(world: World, name: str, token: str | None = None) -> tuple[Peer, str]:
    """A browser of our web client: it signs in with its identity token (a new one the first time)."""
    peer = await world.connect(name)
    await peer.send("login", {"userName": name, **({"identityToken": token} if token else {"newIdentity": True})})
    reply = await peer.expect("loginSuccess")
    assert "identityToken" not in reply or token is None
    return peer, token or reply["identityToken"]


async def v2_client(world: World, name: str) -> Peer:
    """The original MovieMatch v2 web client: a name, nothing else."""
    peer = await world.connect(name)
    await peer.login(name)
    return peer


async def error_of(peer: Peer, reply: str) -> str:
    return str((await peer.wait_for(reply))["name"])


# -- the attacks ----------------------------------------------------------------------------------


async def test_a_typed_name_cannot_delete_someone_elses_room(live_world: Worlds) -> None:
    async for world in live_world():
        alice, _ = await person(world, "Alice")
        await alice.create(ROOM, password="secret")
        for attacker in (await v2_client(world, "Alice"), (await person(world, "Alice"))[0]):
            await attacker.send("deleteRoom", {"roomName": ROOM})
            refused = await attacker.expect("deleteRoomError")
            await attacker.send("deleteRoom", {"roomName": "no such room"})
            assert await attacker.expect("deleteRoomError") == refused  # existence is not revealed
            assert refused["name"] == "NotRoomOwner"
        await alice.send("rate", {"mediaId": "test:1", "rating": "like"})
        await alice.wait_for("userProgress")  # the room is still there
        await alice.send("deleteRoom", {"roomName": ROOM})
        await alice.wait_for("deleteRoomSuccess")


async def test_an_offline_members_seat_is_not_taken_by_typing_their_name(live_world: Worlds) -> None:
    async for world in live_world():
        owner, _ = await person(world, "Owner")
        await owner.create(ROOM)
        alice, alice_token = await person(world, "Alice")
        joined = await alice.join(ROOM)
        await alice.send("rate", {"mediaId": joined["media"][0]["id"], "rating": "like"})
        await alice.wait_for("userProgress")
        await alice.close()
        assert (await owner.wait_for("userLeftRoom"))["userName"] == "Alice"
        impostors = [await v2_client(world, "Alice"), (await person(world, "Alice"))[0]]
        for impostor in impostors:
            await impostor.send("joinRoom", {"roomName": ROOM})
            assert await error_of(impostor, "joinRoomError") == "UserAlreadyJoinedError"
        # The real Alice, on her own browser, gets her seat and her progress back (no memberToken needed).
        again, _ = await person(world, "Alice", alice_token)
        rejoined = await again.join(ROOM)
        assert [user["progress"] for user in rejoined["users"] if user["user"]["userName"] == "Alice"] == [0.1]


async def test_a_name_that_looks_like_a_members_is_refused(live_world: Worlds) -> None:
    async for world in live_world():
        alice, _ = await person(world, "Alice")
        await alice.create(ROOM)
        for look_alike in ("\u0410lice", "ALICE", "Alice "):
            impostor, _ = await person(world, look_alike)
            await impostor.send("joinRoom", {"roomName": ROOM})
            assert await error_of(impostor, "joinRoomError") == "UserAlreadyJoinedError"
        for invisible in ("Alice\u200b", "Alice\u202e", "\u200b", "A\u2066lice"):
            peer = await world.connect()
            await peer.send("login", {"userName": invisible})
            assert await error_of(peer, "loginError") == "InvalidUserName"


async def test_room_names_that_are_invisible_or_look_alike_are_refused(live_world: Worlds) -> None:
    async for world in live_world():
        alice, _ = await person(world, "Alice")
        await alice.create(ROOM)
        for invisible in ("\u200b", "Movie Night\u200b", "Movie\u202eNight"):
            await alice.send("createRoom", {"roomName": invisible})
            assert await error_of(alice, "createRoomError") == "InvalidRoomName"
        await alice.send("createRoom", {"roomName": "Movie N\u0456ght"})  # a Cyrillic i
        assert await error_of(alice, "createRoomError") == "RoomExistsError"


async def test_ghosts_neither_fill_a_room_nor_block_a_unanimous_one(live_world: Worlds) -> None:
    async for world in live_world(max_room_members=3):
        owner, _ = await person(world, "Owner")
        await owner.create(ROOM, roomType="unanimous")
        friend, _ = await person(world, "Friend")
        await friend.join(ROOM)
        ghost, _ = await person(world, "Ghost")
        await ghost.join(ROOM)
        await ghost.close()
        late, _ = await person(world, "Late")
        await late.send("joinRoom", {"roomName": ROOM})
        assert await error_of(late, "joinRoomError") == "RoomFull"
        for peer in (owner, friend):
            await peer.send("rate", {"mediaId": "test:4", "rating": "like"})
        await owner.send("manageMember", {"userName": "Ghost", "action": "remove"})
        await owner.wait_for("manageMemberSuccess")
        # The ghost was all that stood between the others and a unanimous match.
        assert (await friend.wait_for("match"))["media"]["id"] == "test:4"
        await late.join(ROOM)


async def test_members_long_away_free_their_place(live_world: Worlds) -> None:
    async for world in live_world(max_room_members=2, member_absence_days=1 / 86400):  # one second
        owner, _ = await person(world, "Owner")
        await owner.create(ROOM)
        ghost, _ = await person(world, "Ghost")
        await ghost.join(ROOM)
        await ghost.close()
        await owner.wait_for("userLeftRoom")
        await anyio.sleep(1.5)
        late, _ = await person(world, "Late")
        await late.join(ROOM)


# -- the honest flows -----------------------------------------------------------------------------


async def test_one_person_on_two_devices_is_one_member(live_world: Worlds) -> None:
    async for world in live_world():
        owner, _ = await person(world, "Owner")
        await owner.create(ROOM)
        phone, token = await person(world, "Bob")
        await phone.join(ROOM)
        assert (await owner.wait_for("userJoinedRoom"))["user"]["userName"] == "Bob"
        laptop, _ = await person(world, "Bob", token)
        await laptop.join(ROOM)
        await laptop.send("rate", {"mediaId": "test:2", "rating": "like"})
        for peer in (owner, phone, laptop):
            progress = await peer.wait_for("userProgress")
            assert (progress["user"]["userName"], progress["progress"]) == ("Bob", 0.1)
        # The phone may rate too, as the same member: test:2 is Bob's already.
        await phone.send("rate", {"mediaId": "test:2", "rating": "dislike"})
        assert await error_of(phone, "rateError") == "AlreadyRated"
        await owner.send("getMembers")
        members = (await owner.wait_for("getMembersSuccess"))["members"]
        assert [member["userName"] for member in members] == ["Owner", "Bob"]
        await phone.close()
        await laptop.send("rate", {"mediaId": "test:3", "rating": "like"})
        assert (await owner.wait_for("userProgress"))["progress"] == 0.2  # Bob never left: no userLeftRoom
        assert all(message["type"] != "userLeftRoom" for message in owner.backlog)


async def test_a_reload_resumes_with_the_identity_and_the_member_token(live_world: Worlds) -> None:
    async for world in live_world():
        alice, token = await person(world, "Alice")
        created = await alice.create(ROOM)
        bob, _ = await person(world, "Bob")
        await bob.join(ROOM)
        # A reload: a new socket, the same browser, before the server noticed the old one gone.
        reloaded, _ = await person(world, "Alice", token)
        again = await reloaded.join(ROOM, memberToken=created["memberToken"])
        assert again["roomOwner"] == "Alice"
        await reloaded.send("deleteRoom", {"roomName": ROOM})
        assert (await bob.wait_for("roomDeleted"))["roomName"] == ROOM


async def test_the_owner_hands_a_seat_to_a_new_device(live_world: Worlds) -> None:
    async for world in live_world():
        owner, _ = await person(world, "Owner")
        await owner.create(ROOM)
        old_phone, _ = await person(world, "Carol")
        joined = await old_phone.join(ROOM)
        await old_phone.send("rate", {"mediaId": joined["media"][0]["id"], "rating": "like"})
        await old_phone.wait_for("userProgress")
        # Carol's new phone has no secret of the old one: the name is taken...
        new_phone, _ = await person(world, "Carol")
        await new_phone.send("joinRoom", {"roomName": ROOM})
        assert await error_of(new_phone, "joinRoomError") == "UserAlreadyJoinedError"
        # ...until the owner offers Carol's seat and reads the code out.
        await owner.send("manageMember", {"userName": "Carol", "action": "offerSeat"})
        offer = await owner.wait_for("manageMemberSuccess")
        assert len(offer["seatCode"]) == 6
        await new_phone.send("joinRoom", {"roomName": ROOM, "seatCode": "000000"})
        assert await error_of(new_phone, "joinRoomError") == "InvalidSeatCode"
        seated = await new_phone.join(ROOM, seatCode=offer["seatCode"].lower())
        assert seated["userName"] == "Carol"
        assert [u["progress"] for u in seated["users"] if u["user"]["userName"] == "Carol"] == [0.1]
        # The code was for one device: used, it opens nothing more.
        stranger, _ = await person(world, "Dave")
        await stranger.send("joinRoom", {"roomName": ROOM, "seatCode": offer["seatCode"]})
        assert await error_of(stranger, "joinRoomError") == "InvalidSeatCode"


async def test_the_owner_removes_a_member_who_stays_out_until_readmitted(live_world: Worlds) -> None:
    async for world in live_world():
        owner, _ = await person(world, "Owner")
        await owner.create(ROOM)
        troll, troll_token = await person(world, "Troll")
        await troll.join(ROOM)
        member, _ = await person(world, "Member")
        await member.join(ROOM)
        await member.send("manageMember", {"userName": "Troll", "action": "remove"})
        assert await error_of(member, "manageMemberError") == "NotRoomOwner"
        await owner.send("manageMember", {"userName": "Troll", "action": "remove"})
        assert (await owner.wait_for("manageMemberSuccess"))["action"] == "remove"
        assert await troll.wait_for("removedFromRoom") == {"roomName": ROOM}
        assert (await member.wait_for("memberRemoved"))["userName"] == "Troll"
        for attempt in ((await person(world, "Troll", troll_token))[0], (await person(world, "Troll", troll_token))[0]):
            await attempt.send("joinRoom", {"roomName": ROOM})
            assert await error_of(attempt, "joinRoomError") == "RemovedFromRoom"
        await owner.send("getMembers")
        listing = await owner.wait_for("getMembersSuccess")
        assert listing["removed"] == ["Troll"]
        await owner.send("manageMember", {"userName": "Troll", "action": "readmit"})
        assert (await owner.wait_for("manageMemberSuccess"))["action"] == "readmit"
        back, _ = await person(world, "Troll", troll_token)
        await back.join(ROOM)


async def test_the_owner_hands_the_room_over(live_world: Worlds) -> None:
    async for world in live_world():
        owner, _ = await person(world, "Owner")
        await owner.create(ROOM)
        heir, _ = await person(world, "Heir")
        await heir.join(ROOM)
        await owner.send("manageMember", {"userName": "Heir", "action": "makeOwner"})
        assert (await heir.wait_for("ownerChanged"))["userName"] == "Heir"
        await owner.send("deleteRoom", {"roomName": ROOM})
        assert await error_of(owner, "deleteRoomError") == "NotRoomOwner"
        await heir.send("deleteRoom", {"roomName": ROOM})
        await heir.wait_for("deleteRoomSuccess")


async def test_a_v2_client_works_as_in_v2_but_never_takes_an_identitys_seat(live_world: Worlds) -> None:
    async for world in live_world():
        ann = await v2_client(world, "ann")
        created = await ann.create(ROOM)
        bob = await v2_client(world, "bob")
        await bob.join(ROOM)
        await ann.send("rate", {"mediaId": created["media"][0]["id"], "rating": "like"})
        await bob.send("rate", {"mediaId": created["media"][0]["id"], "rating": "like"})
        assert (await bob.wait_for("match"))["media"]["id"] == created["media"][0]["id"]
        # A reload of the v2 client: a new login by name and joinRoom without a token, once the
        # old socket is gone, resumes as in v2.
        await bob.close()
        await ann.wait_for("userLeftRoom")
        reloaded = await v2_client(world, "bob")
        again = await reloaded.join(ROOM)
        assert [match["media"]["id"] for match in again["previousMatches"]] == [created["media"][0]["id"]]
        # Its creator, seated under its name, may delete its room, as in v2.
        await ann.send("deleteRoom", {"roomName": ROOM})
        await ann.wait_for("deleteRoomSuccess")


async def test_a_bad_identity_token_is_refused(live_world: Worlds) -> None:
    async for world in live_world():
        peer = await world.connect()
        forged: dict[str, Any] = {"userName": "ann", "identityToken": "not-a-token"}
        await peer.send("login", forged)
        assert await error_of(peer, "loginError") == "InvalidIdentity"
