"""Pipeline step: a meeting request to a pool books one free member (``services.pools``).

A pool's address fans out to its members as a group's does, so plain mail reaches each of
them. A REQUEST or CANCEL naming the pool is processed once, by the delivery to the pool's
first member by name, and filed in that member's Processed Requests; the other members'
copies are answered 250 and not filed. A member's own copy of an update that names its
pool (the organizer writes to both after a delegation) goes to the pool too: whichever
comes second is a duplicate of the booked revision, so nothing is booked or answered twice.
A redelivered message is caught before that by the Message-ID of the first member's store.
"""

from __future__ import annotations

from mr_engine.services import pools
from mr_engine.services.meeting_requests import pool_book_and_queue

from .context import Delivery, Outcome
from .meeting import book

TAKEN = Outcome(250, "2.0.0", "Ok: the pool's request is processed by its first member")


def process_pool_request(d: Delivery) -> Outcome | None:
    if d.envelope.calendar is None:  # plain mail: no lookup on the common path
        return None
    route = pools.route(d.session, d.recipient, d.mailbox, d.envelope, d.settings,
                        d.batch.pool_addresses(d.session))
    if route is None:
        return None
    if not route.here:
        d.notes.append(f"pool {route.pool.name}: processed by its first member")
        return TAKEN
    pool = route.pool

    def run():
        result = pool_book_and_queue(d.session, pool, d.envelope, d.settings, d.now)
        return None if result is None else (f"pool {pool.name} request", result)

    book(d, run)
    return None
