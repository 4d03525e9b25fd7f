"""The run report: the HTML page in the run's storage and a Prefect Markdown artifact that points to it."""
from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from reports.html import summary_markdown, write_report
from storage.keys import id_segment
from storage.root import open_root
from tasks.retry_policy import IO_RETRY


@task(name="publish-report", cache_policy=NO_CACHE, **IO_RETRY)
def publish_report(storage_url: str, run_id: str) -> dict:
    """Write the run's HTML report (at :func:`storage.keys.report_key`) and publish the run summary as a
    Markdown artifact.

    Returns ``{"report_uri", "artifact_key"}``.
    """
    root = open_root(storage_url)
    uri = write_report(root, run_id)
    key = f"foley-run-{id_segment(run_id)}"  # artifact keys: lowercase letters, digits and dashes
    create_markdown_artifact(markdown=summary_markdown(root, run_id, uri), key=key,
                             description=f"Foley run {run_id}: summary and report location")
    return {"report_uri": uri, "artifact_key": key}
