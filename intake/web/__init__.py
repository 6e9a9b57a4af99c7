"""The staff console: a server-rendered site over the same database and intake.actions.

Nothing outside this package imports it except the `intake web` command (and `intake run`
when `[web] enabled`). No rule lives here: views call intake.actions / intake.board.
"""
