"""`gen serve`: models behind an OpenAI-compatible HTTP API, with sessions, next-character odds,
structure checks and a playground page (app.py: routes; engine.py: the batch that steps every
request; jobs.py: one stream of a request; requests.py: limits and checks; sessions.py;
served.py; command.py: the CLI)."""
