"""The service's durable state, and the one way to it: every SQL statement lives in this
package (and the schema's history in `migrations/`).

- `engine`: `Store`, the engine over `DATABASE_URL`, migrations at start-up, the readiness
  probe, the housekeeping loop;
- `errors`: what a database failure looks like, and the 503 a request answers;
- `tables`: every table, on one `metadata`;
- `events`, `idempotency`, `projections`: one repository per table group;
- `cursor`: the page-token codec of keyset pages.

The domain modules (`app.events.webhooks`, `app.http.idempotency`, `app.events.sessions`) keep the
rules and
call the repositories; `tests/unit/test_store_boundary.py` fails when a module outside this
package imports SQLAlchemy's statement builders.
"""
