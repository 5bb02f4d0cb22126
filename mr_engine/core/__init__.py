"""The pure core: iTIP and iMIP parsing, recurrence, time zones, booking policy, the replies
and out-of-office rules, and building outgoing mail. Functions of plain data and ``now``: no
database, no network, no clock (an import contract checks it)."""
