"""Download tasks: players' downloads as the service documents describe them (a per-user
queue with priorities, pause, resume, cancel, progress reported by the client that
downloads, update and integrity tasks), over depot's own catalogue and links.

settings: what ``depot serve`` configures. models: the documents' tables. migrations:
Alembic, applied on start. repository: the database (SQLite or PostgreSQL) behind one
class. queue: statuses, transitions, order, limits; it tells ``TaskListener``s (listener)
after each committed change. auth: bearer tokens and entitlement. api: the REST routes.
See docs/service.md (download tasks).

May import: errors, layout, core, formats, storage, trust, delta.route.
"""
