"""The hold store on PostgreSQL: what a server shared by a trust's schools adds to the tests run on both backends.

Each school's store is a schema of its own (``school_schema``); several
proxies or commands may hold connections to one school's store at once, and
the server's collation may be a language's.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest

from dojoguard.holds.seal import SealKeyError
from dojoguard.holds.store import HoldError, HoldState, HoldStore
from dojoguard.rules.decision import Verdict
from dojoguard.storage.postgresql import PostgreSQLDatabase, school_schema

from .conftest import StoreOpener
from .test_store import ACTION, MONDAY_0800, decision, request


@pytest.fixture
def server_stores(postgres, tmp_path) -> StoreOpener:
    return StoreOpener("postgresql", tmp_path, postgres.create_database())


def test_two_schools_in_one_database_never_see_each_others_items(server_stores):
    """Items, notices and logins kept for one school are not listed, found or used by another's store."""
    first, second = server_stores.open("st-wilfrids"), server_stores.open("hill-top")
    try:
        item = first.keep("hold", request(), decision(Verdict.HOLD), ACTION, None)
        first.tell("t1", item.id, "rejected", "Your post was not approved.", MONDAY_0800, interrupts=True)
        first.note_session("t1", "dojo_login.sid=s%3Aabc.sig", "s:abc.sig", MONDAY_0800)
        assert [i.id for i in first.list()] == [item.id] and second.list() == []
        with pytest.raises(HoldError):
            second.find(item.decision_id)
        assert second.notices_for("t1") == [] and second.session_of("t1") is None
        assert first.session_of("t1") is not None and len(first.notices_for("t1")) == 1
        # The same teacher's retry at the other school is an item of its own, not a duplicate.
        assert not second.keep("hold", request(), decision(Verdict.HOLD), ACTION, None).is_duplicate
    finally:
        first.close()
        second.close()


def test_two_connections_to_one_school_claim_an_item_only_once(server_stores):
    """Two proxies (or a proxy and a command) racing for the same due items: each is claimed by exactly one."""
    one, other = server_stores.open(), server_stores.open()
    try:
        ids = [one.keep("defer", request(f'{{"n":{n}}}'.encode()), decision(), ACTION, MONDAY_0800).id
               for n in range(8)]
        claimed: dict[str, list[str]] = {"one": [], "other": []}
        start = threading.Barrier(2)

        def claim(name: str, store: HoldStore) -> None:
            start.wait()
            for item_id in ids:
                try:
                    store.begin_send(item_id, name, MONDAY_0800)
                except HoldError:
                    continue  # the other one has it
                claimed[name].append(item_id)

        threads = [threading.Thread(target=claim, args=(name, store)) for name, store in
                   (("one", one), ("other", other))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(claimed["one"] + claimed["other"]) == sorted(ids)
        assert {i.sending_at for i in one.list()} == {MONDAY_0800}
        assert all(other.get(i).state == HoldState.SENDING for i in ids)
    finally:
        one.close()
        other.close()


def test_a_rejection_and_a_send_from_two_connections_never_both_take_the_item(server_stores):
    """Whichever of a leader's rejection and the proxy's claim comes second is refused, saying why."""
    proxy, command = server_stores.open(), server_stores.open()
    try:
        item = proxy.keep("defer", request(), decision(), ACTION, MONDAY_0800)
        proxy.begin_send(item.id, "run", MONDAY_0800)
        with pytest.raises(HoldError, match="being sent"):
            command.begin_reject(item.id)
        later = proxy.keep("defer", request(b'{"body":"later"}'), decision(), ACTION, MONDAY_0800)
        command.begin_reject(later.id)
        with pytest.raises(HoldError, match="no longer due"):
            proxy.begin_send(later.id, "run", MONDAY_0800)
    finally:
        proxy.close()
        command.close()


@pytest.fixture
def language_collated(postgres, tmp_path) -> StoreOpener:
    """Stores in a database whose default collation is English's (ICU), where '.' sorts before '+'."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'")
    return StoreOpener("postgresql", tmp_path, postgres.dsn(name))


def test_times_compare_as_in_sqlite_whatever_the_databases_collation(language_collated):
    """Half a second after 8.00 is not due at 8.00 ('.' and '+' in byte order, not English's), and the store
    lists what ``begin_send`` then agrees to send."""
    store = language_collated.open()
    try:
        late = store.keep("defer", request(), decision(), ACTION, MONDAY_0800 + timedelta(milliseconds=500))
        assert store.due(MONDAY_0800) == []
        assert [i.id for i in store.due(MONDAY_0800 + timedelta(seconds=1))] == [late.id]
        store.begin_send(late.id, "run", MONDAY_0800 + timedelta(seconds=1))
    finally:
        store.close()


def test_a_store_that_cannot_open_closes_the_database_it_was_given(server_stores):
    """``HoldStore.on`` owns the database: a key that is not a key refuses the store and closes the connection."""
    server_stores.open().close()
    server_stores.key_path.write_text("not a key\n", "ascii")
    database = PostgreSQLDatabase.open(server_stores.dsn, schema=school_schema("st-wilfrids", "holds"))
    with pytest.raises(SealKeyError):
        HoldStore.on(database, key_path=server_stores.key_path)
    assert database.closed


def test_the_store_names_its_server_and_schema_never_a_password(server_stores, postgres):
    """What messages call the store: the server, database and school's schema."""
    with_password = server_stores.dsn.replace("@", ":hunter2@", 1)
    store = HoldStore.on(PostgreSQLDatabase.open(with_password, schema=school_schema("st-wilfrids", "holds")),
                         key_path=server_stores.key_path)
    try:
        assert "holds_st_wilfrids" in str(store.path) and "hunter2" not in str(store.path)
    finally:
        store.close()
