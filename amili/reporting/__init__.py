"""Reporting for analysts: a published snapshot, the dashboard's queries, the sign-off report.

Nothing here opens the pipeline's own DuckDB file except :func:`snapshot.publish_snapshot`,
which the Dagster asset runs inside the writers' pool. Everything analysts run (the
dashboard, ad-hoc SQL, the sign-off report) reads the published copy only, so a reader can
never make the daily run fail on DuckDB's one-writer-per-file lock.
"""
