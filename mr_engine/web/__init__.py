"""The HTTP front end: free/busy, calendar feeds, pages for people, health and metrics.

``front.py`` serves it in each worker of ``mr-engine serve`` (a front end of
``delivery.frontends``); ``app.py`` builds the aiohttp application from the route modules
it lists, one module a kind of page; ``context.py`` is what every handler gets (the store,
the settings, the clock); ``errors.py`` turns failures into short plain-text answers;
``params.py`` reads query parameters. Every request is read-only, and the database is read
in a thread so that LMTP sessions on the same event loop never wait for it.
"""
