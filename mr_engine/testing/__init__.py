"""The shared harness of the tests and the benchmark: real servers as context managers, a raw
LMTP client, a throwaway PostgreSQL, invitation builders. Nothing in the engine imports it.

One module a job:

* ``servers``: ``mr-engine serve`` in process (RunningServer) or as a child (ServeProcess),
  and their settings (make_settings, serve_env, server_at).
* ``lmtp_client``: the raw LMTP client (RawClient, send_message, dot_stuff, deliver).
* ``smarthost``: a real SMTP smarthost for the relay (Smarthost, Sink, relay_settings).
* ``pgcluster``: the throwaway PostgreSQL cluster.
* ``processes``: free_port, children, engine_command.
* ``accounts``: users and resources in a store; ``store_views``: what the engine stored.
* ``invites``: iMIP requests and replies; ``ical``: iCalendar text and fixture parsing;
  ``mail``: plain messages.
* ``times``: the fixed clock and meeting times; ``paths``: console scripts, the checkout.
"""
