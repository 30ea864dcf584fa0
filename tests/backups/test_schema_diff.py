"""Schema diffs between two real backups: pg_dump's random \\restrict keys are
not changes, real changes are; no runs chosen gives the pickers."""

import html

import pytest
from playwright.sync_api import expect

from backups.services import create_backup_run
from backups.views import schema_lines
from tests.browser import at_both_widths, needs_chromium
from tests.conftest import psql

pytestmark = pytest.mark.django_db(transaction=True)


def backed_up(database):
    run = create_backup_run(database)
    run.execute(inline=True)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


@pytest.fixture
def three_runs(source_database):
    psql(source_database.dbname, "CREATE TABLE orders (id serial PRIMARY KEY, total int);")
    first, second = backed_up(source_database), backed_up(source_database)
    psql(source_database.dbname, "ALTER TABLE orders ADD COLUMN note text;")
    return first, second, backed_up(source_database)


def test_only_the_restrict_lines_are_ignored():
    text = "\\restrict abcDEF123\nCREATE TABLE t ();\n\\unrestrict abcDEF123\n\\restrict not a key line\n"
    lines, ignored = schema_lines(text)
    assert lines == ["CREATE TABLE t ();", "\\restrict not a key line"] and ignored


def test_two_dumps_of_the_same_schema_are_identical_and_a_change_shows(client, viewer, three_runs):
    first, second, third = three_runs
    client.force_login(viewer)
    same = client.get(f"/databases/app/schema-diff/?a={first.pk}&b={second.pk}").content.decode()
    assert "The two schemas are identical" in same and "restrict</code> keys aside" in same
    changed = html.unescape(client.get(f"/databases/app/schema-diff/?a={second.pk}&b={third.pk}").content.decode())
    added = [line for line in changed.splitlines() if line.startswith('<span class="add">+')]
    removed = [line for line in changed.splitlines() if line.startswith('<span class="del">-')]
    assert any("note text" in line for line in added)
    assert not any("restrict" in line for line in added + removed)


def test_no_runs_chosen_offers_the_pickers(client, viewer, three_runs):
    client.force_login(viewer)
    page = client.get("/databases/app/schema-diff/").content.decode()
    assert 'id="schema-picker"' in page and "#" not in page.split("<h1>")[1].split("</h1>")[0]
    assert "Choose two backups" not in page
    for run in three_runs:
        assert f'<option value="{run.pk}"' in page


def test_a_database_with_one_backup_says_two_are_needed(client, viewer, source_database):
    backed_up(source_database)
    client.force_login(viewer)
    page = client.get("/databases/app/schema-diff/").content.decode()
    assert 'id="schema-diff-empty"' in page and "this database has 1" in page


@needs_chromium
def test_the_schema_diff_page_renders_in_each_state_at_both_widths(browser, live_server, viewer, three_runs):  # noqa: F811
    first, second, third = three_runs
    states = {
        "pickers": ("", "#schema-picker", "Compare"),
        "identical": (f"?a={first.pk}&b={second.pk}", "#schema-identical", "identical"),
        "changed": (f"?a={second.pk}&b={third.pk}", "pre.diff", "note text"),
        "error": ("?a=1&b=x", "[role=alert]", "Choose two backups."),
    }
    for name, (query, selector, text) in states.items():
        at_both_widths(browser, live_server.url, viewer.username, f"/databases/app/schema-diff/{query}",
                       f"schema-diff-{name}",
                       lambda page, s=selector, t=text: expect(page.locator(s)).to_contain_text(t))
