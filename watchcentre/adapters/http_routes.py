"""THE route table: every HTTP route, written once. `http_app.create_app` registers the aiohttp
routes from it (access control and request validation included) and `openapi.openapi_document`
generates the OpenAPI 3.1 document from it, so the server and its description cannot drift apart.

A row says: method, path, handler, who may use it (an `Area` of core/access.py, or PUBLIC), the
query and body models, the answers by status, and the words of the document. 401/403/429/500, and
400 for routes that take a query or a body, are added from `access` (see `Route`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from watchcentre.adapters import http, http_cases, http_console, http_i18n, http_screens, http_watch
from watchcentre.adapters.http_base import PUBLIC, Body, Content, Json, PathParam, Route
from watchcentre.adapters.http_models import (
    LANGS,
    SANE_TIME_PATTERN,
    AuditExportQuery,
    AuditPage,
    AuditQuery,
    CaseActionBody,
    CaseDetail,
    CaseList,
    CasePageQuery,
    CasesQuery,
    ConflictBody,
    ConsoleMessage,
    ConsoleMessageQuery,
    ConsolePage,
    Corrections,
    DeadLetterList,
    DeadLetterQuery,
    ErrorBody,
    FeedQuery,
    Glance,
    GlanceQuery,
    Health,
    Labels,
    LabelsQuery,
    Me,
    MessageDetail,
    MessageLookup,
    MessagePage,
    NoQuery,
    NoteList,
    NotesQuery,
    PostList,
    RecipientList,
    ReinjectRequest,
    ReinjectResult,
    RouteRequest,
    RouteResult,
    SearchPage,
    SendBody,
    SendResult,
    SignedIn,
    SignedOut,
    SignIn,
    Stats,
    StatsQuery,
    SubjectExport,
    SubjectQuery,
    SubjectSearch,
    UnitList,
    WatchBody,
    WatchesQuery,
    WatchList,
)
from watchcentre.core.access import Area
from watchcentre.core.audit_chain import Verification
from watchcentre.core.envelope import Envelope
from watchcentre.core.manual import Note, NoteInput
from watchcentre.core.records import MessageQuery
from watchcentre.core.rules import ConfigReload
from watchcentre.core.search import SearchQuery
from watchcentre.core.taxonomy import CRIME_CODES
from watchcentre.core.watches import Watch

_HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
_ANY_JSON: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
_TIME = {"type": "string", "format": "date-time", "pattern": SANE_TIME_PATTERN}
_PERIOD = {name: {"schema": _TIME} for name in ("since", "until")}
_REFERENCE = PathParam(
    "reference", "The case reference, e.g. WC-2026-7KQ2M9XH4TF.", pattern=".+"
)  # may hold '/'
_NO_CASE = {404: Json(ErrorBody, "No such case, or not one the caller may see.")}
_NOT_FOUND = {404: Json(ErrorBody, "No such message or dead letter (or already re-injected).")}
_CONSOLE = ("console",)

ROUTES: tuple[Route, ...] = (
    # -- the service ------------------------------------------------------------------------------
    Route(
        "GET",
        "/health",
        http.health,
        "health",
        "Readiness of the service and its dependencies",
        PUBLIC,
        {200: Json(Health, "Every check passes."), 503: Json(Health, "At least one check fails.")},
    ),
    Route(
        "GET",
        "/metrics",
        http.metrics,
        "metrics",
        "Prometheus metrics (an operator token, or the scraper token WATCHCENTRE_METRICS_TOKEN)",
        Area.METRICS,
        {200: Content("Prometheus text exposition format.", {"text/plain": {"schema": {"type": "string"}}})},
    ),
    Route(
        "GET",
        "/api/posts",
        http.list_posts,
        "listPosts",
        "The posts abroad, the countries each covers, and their routing keys",
        Area.NETWORK,
        {200: Json(PostList, "Operators: every post; a post: itself; others: none.")},
    ),
    Route(
        "GET",
        "/api/units",
        http.list_units,
        "listUnits",
        "The French units, their crime areas, and their routing keys",
        Area.NETWORK,
        {200: Json(UnitList, "Operators: every unit; a unit: itself; others: none.")},
    ),
    Route(
        "GET",
        "/api/messages",
        http.list_messages,
        "listMessages",
        "Stored messages the caller may see, newest first, filtered and paged (audited)",
        Area.MESSAGES,
        {200: Json(MessagePage, "One page of summaries.")},
        query=MessageQuery,
        param_schemas={
            "since": {
                "schema": _TIME,
                "description": "RFC 3339 time with an offset, e.g. 2024-05-01T08:00:00Z.",
            },
            "until": {
                "schema": _TIME,
                "description": "RFC 3339 time with an offset, e.g. 2024-05-01T08:00:00Z.",
            },
            "country": {
                "schema": {"type": "string", "pattern": http.ISO2_PATTERN},
                "description": "ISO 3166-1 alpha-2 (either case).",
            },
            "crime_type": {"schema": {"type": "string", "enum": sorted(CRIME_CODES)}},
        },
    ),
    Route(
        "GET",
        "/api/search",
        http.search,
        "search",
        "Full-text search over subject and body (French and English), best first, within need-to-know"
        " (audited)",
        Area.MESSAGES,
        {200: Json(SearchPage, "One page of hits with their highlighted fragments.")},
        query=SearchQuery,
        param_schemas={
            "q": {
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": 'Words (all must match), "a phrase", prefix*; accents and case do not matter.',
            },
            **_PERIOD,
            "country": {"schema": {"type": "string", "pattern": http.ISO2_PATTERN}},
            "crime_type": {"schema": {"type": "string", "enum": sorted(CRIME_CODES)}},
        },
        description="The same filters as /api/messages. Follow `next` (as `after`) for the next page."
        " A query with nothing to search for is 400 naming `q`. See docs/search.md.",
    ),
    Route(
        "GET",
        "/api/messages/{message_id}",
        http.get_message,
        "getMessage",
        "One stored message with its routing explanation and audit timeline (audited)",
        Area.MESSAGES,
        {
            200: Json(MessageDetail, "The message."),
            404: Json(ErrorBody, "No such message, or not one the caller may see."),
        },
        query=MessageLookup,
        path_params=(PathParam("message_id", "The sender's message_id."),),
    ),
    Route(
        "GET",
        "/api/audit",
        http.list_audit,
        "listAudit",
        "The audit trail, oldest first, filtered and paged",
        Area.AUDIT,
        {200: Json(AuditPage, "One page of events.")},
        query=AuditQuery,
        param_schemas=_PERIOD,
        description="Auditors only. Filters: who (actor), what (type, message_id, sender), when"
        " ([since, until)). Each read is itself recorded (`listed`, with the seqs returned).",
    ),
    Route(
        "GET",
        "/api/audit/verify",
        http.get_audit_verify,
        "verifyAudit",
        "Walk the audit trail: the hash chain, gaps in seq, the signed anchor of its head",
        Area.AUDIT,
        {200: Json(Verification, "The verification; ok: false lists every finding in problems.")},
        query=NoQuery,
    ),
    Route(
        "GET",
        "/api/audit/export",
        http.audit_export,
        "exportAudit",
        "The audit trail of a period as a signed file (JSON lines), for an inspection",
        Area.AUDIT,
        {200: Content("JSON lines: a header, the records, a signature.", {"application/x-ndjson": {}})},
        query=AuditExportQuery,
        param_schemas=_PERIOD,
        description="Auditors only. From the first record at or after `since` to the last before `until`,"
        " every seq in between; signed (HMAC-SHA256) with the audit anchor's key. Check it offline with"
        " `watchcentre audit verify-export FILE`. The export is itself recorded (`exported`).",
    ),
    Route(
        "GET",
        "/api/dpo/search",
        http.subject_search,
        "searchSubject",
        "A person's request: every stored message, case and note that mentions an identifier",
        Area.AUDIT,
        {200: Json(SubjectSearch, "What mentions it, without the texts.")},
        query=SubjectQuery,
        description="Auditors (the data-protection officer) only. Recorded (`searched`, the query's"
        " SHA-256 and the ids found).",
    ),
    Route(
        "GET",
        "/api/dpo/export",
        http.subject_export,
        "exportSubject",
        "A person's request: everything stored that mentions an identifier, whole",
        Area.AUDIT,
        {200: Json(SubjectExport, "The messages, cases and notes, whole.")},
        query=SubjectQuery,
        description="Auditors (the data-protection officer) only. Recorded (`exported`, the query's"
        " SHA-256 and the ids exported).",
    ),
    Route(
        "GET",
        "/api/schema/envelope",
        http.get_envelope_schema,
        "envelopeSchema",
        "JSON Schema of the envelope senders publish",
        Area.REFERENCE,
        {200: Content("A JSON Schema document.", _ANY_JSON)},
    ),
    Route(
        "GET",
        "/api/openapi.json",
        http.get_openapi,
        "openapi",
        "This document",
        Area.REFERENCE,
        {200: Content("An OpenAPI 3.1 document.", _ANY_JSON)},
    ),
    Route(
        "GET",
        "/signin",
        http.get_signin,
        "signInPage",
        "The sign-in page (a form that takes a token)",
        PUBLIC,
        {200: Content("An HTML form.", _HTML)},
    ),
    Route(
        "POST",
        "/signin",
        http.post_signin,
        "signIn",
        "Check a token and keep it in the wc_session cookie (Secure, HttpOnly, SameSite=Strict)",
        PUBLIC,
        {
            200: Json(SignedIn, "Signed in (JSON request); the cookie is set."),
            303: Content("Signed in (form); the cookie is set; to the console."),
            400: Json(ErrorBody, "The body is not valid; `field` names the problem."),
            401: Content(
                "The token is invalid, expired or revoked.",
                {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}, **_HTML},
            ),
            403: Json(ErrorBody, "A cross-origin sign-in."),
            413: Json(ErrorBody, "The body is over 4 KiB."),
            415: Json(ErrorBody, "Neither a form nor JSON."),
            429: Json(ErrorBody, "Too many failed authentications from this address; see Retry-After."),
        },
        body=Body(SignIn, media_types=("application/json", "application/x-www-form-urlencoded"), parse=False),
    ),
    Route(
        "POST",
        "/signout",
        http.post_signout,
        "signOut",
        "Clear the wc_session cookie",
        PUBLIC,
        {200: Json(SignedOut, "The cookie is cleared.")},
    ),
    Route(
        "GET",
        "/api/me",
        http_i18n.get_me,
        "me",
        "Who the session or token speaks for: role, name, post or unit (the screens' header)",
        Area.REFERENCE,
        {200: Json(Me, "The signed-in principal.")},
    ),
    Route(
        "GET",
        "/api/labels",
        http_i18n.get_labels,
        "labels",
        "The words for codes in a language: crime types and countries (the screens show them)",
        Area.REFERENCE,
        {200: Json(Labels, "The labels.")},
        query=LabelsQuery,
    ),
    Route(
        "GET",
        "/console/locales/{lang}/{bundle}",
        http_i18n.locale_bundle,
        "localeBundle",
        "A message catalog of the screens (flat keys → words), e.g. /console/locales/fr/common.json",
        PUBLIC,
        {200: Content("The catalog.", _ANY_JSON), 404: Json(ErrorBody, "No such language or catalog.")},
        path_params=(
            PathParam("lang", None, {"type": "string", "enum": list(LANGS)}),
            PathParam("bundle", None, {"type": "string", "enum": [f"{b}.json" for b in http_i18n.BUNDLES]}),
        ),
        tags=_CONSOLE,
    ),
    # -- the request lifecycle (docs/lifecycle.md) ----------------------------------------------------
    Route(
        "GET",
        "/api/cases",
        http_cases.list_cases,
        "listCases",
        "Cases the caller may see, newest first in pages; in a page overdue first (audited)",
        Area.MESSAGES,
        {200: Json(CaseList, "One page of cases.")},
        query=CasesQuery,
        description="Need-to-know is part of the query: an operator sees every case, a post the cases routed"
        " to it, a unit the requests it sent. Follow `next` (as `before`) for older cases.",
    ),
    Route(
        "POST",
        "/api/cases/{reference}/{action}",
        http_cases.post_case_action,
        "actOnCase",
        "Acknowledge, progress, answer, close, reject, withdraw, clarification, extend",
        Area.MESSAGES,
        {
            200: Json(CaseDetail, "The case after the action."),
            400: Json(ErrorBody, "The body is not valid; `field` names the problem."),
            **_NO_CASE,
            409: Json(ConflictBody, "The case's state (or the caller's side) does not allow it."),
            415: Json(ErrorBody, "A body that is not JSON."),
            503: Json(ErrorBody, "Case actions are not wired in this instance (an API-only app)."),
        },
        body=Body(CaseActionBody, required=False),
        path_params=(
            _REFERENCE,
            PathParam("action", None, {"type": "string", "enum": list(http_cases.ACTIONS)}, pattern="[a-z]+"),
        ),
        description="Posts: ack, progress, answer, reject, clarification (request), extend. Units: close, "
        "withdraw, clarification (answer). Operators: all. See docs/lifecycle.md for the transitions.",
    ),
    Route(
        "POST",
        "/api/send",
        http_screens.send,
        "send",
        "A post or a unit sends information or a request from its screen: routed like the same envelope"
        " over AMQP (same checks, classification, routing, copies, case, audit)",
        Area.MESSAGES,
        {
            200: Json(SendResult, "Routed (or sent to triage) and recorded."),
            403: Json(ErrorBody, "Not a post nor a unit, or a cross-origin request."),
            415: Json(ErrorBody, "A body that is not JSON."),
            503: Json(ErrorBody, "Sending is not wired in this instance (an API-only app)."),
        },
        body=Body(SendBody),
        description="The sender is the signed-in post or unit (never a field of the body); message_id and"
        " sent_at are the service's. A refusal is 400 naming the field, before anything is routed.",
    ),
    Route(
        "GET",
        "/api/posts/{post_id}/inbox",
        http_cases.post_inbox,
        "postInbox",
        "Open requests routed to the post, newest first in pages; in a page overdue first (audited)",
        Area.MESSAGES,
        {
            200: Json(CaseList, "One page of open cases."),
            404: Json(ErrorBody, "No such post, or not the caller's."),
        },
        query=CasePageQuery,
        path_params=(PathParam("post_id", "A post id (an operator, or that post)."),),
    ),
    Route(
        "GET",
        "/api/requests/{reference}",
        http_cases.get_request,
        "trackRequest",
        "A request's state, recipients, due times and time left, and its full timeline (audited)",
        Area.MESSAGES,
        {200: Json(CaseDetail, "The case."), **_NO_CASE},
        path_params=(_REFERENCE,),
    ),
    Route(
        "GET",
        "/track/{reference}",
        http_cases.track_page,
        "trackPage",
        "The same as a page readable on a phone, live (without a session: sign in, then back here)",
        Area.MESSAGES,
        {
            200: Content("An HTML page (it reads the case from /api/requests/{reference}).", _HTML),
            303: Content("No session: to /signin?next=/track/{reference}, and back after signing in."),
            **_NO_CASE,
        },
        path_params=(_REFERENCE,),
        page=True,
    ),
    Route(
        "GET",
        "/api/feed",
        http_console.feed_for_all,
        "feed",
        "Live feed (WebSocket) for every party: an operator gets the console's feed and case events; a post or a unit the"
        " events of its own messages and cases only, by the API's need-to-know rules (back-fill included)",
        Area.MESSAGES,
        {101: Content("Switching to the WebSocket protocol.")},
        query=FeedQuery,
        description="Frames as /api/console/feed. For a post or a unit the snapshot lists no message (its"
        " page reads its cases through the API) and each item says only seq, at, type, reference and"
        " message_id, with the message summary when the message itself is visible to it.",
    ),
    Route(
        "GET",
        "/api/stats",
        http_cases.get_stats,
        "stats",
        "Requests by crime type, country, post, state; time to ack and answer; on-time share",
        Area.MESSAGES,
        {200: Json(Stats, "The statistics.")},
        query=StatsQuery,
        param_schemas=_PERIOD,
        description="Operators only. Every case opened in [since, until).",
    ),
    Route(
        "GET",
        "/api/stats.csv",
        http_cases.get_stats_csv,
        "statsCsv",
        "The statistics as CSV rows (section, key, value)",
        Area.MESSAGES,
        {200: Content("CSV.", {"text/csv": {"schema": {"type": "string"}}})},
        query=StatsQuery,
        param_schemas=_PERIOD,
        description="Operators only. Every case opened in [since, until).",
    ),
    # -- the operator console (operators only; the page and its assets hold no data) --------------------
    Route(
        "GET",
        "/",
        http_screens.home_page,
        "homePage",
        "The signed-in party's screen: operators the console, a post its inbox, a unit its requests,"
        " an auditor the audit trail's page (static pages; their assets are under /console/)",
        Area.REFERENCE,
        {200: Content("The page.", _HTML), 303: Content("No session: to /signin?next=/.")},
        page=True,
    ),
    Route(
        "GET",
        "/console/{name}",
        http_console.console_asset,
        "consoleAsset",
        "A file of the console page (its scripts, style sheet, map data, icon)",
        PUBLIC,
        {
            200: Content(
                "The file.",
                {
                    t: {"schema": {} if t.endswith("json") else {"type": "string"}}
                    for t in sorted(set(http_console.ASSETS.values()))
                },
            ),
            404: Json(ErrorBody, "No such asset."),
        },
        path_params=(PathParam("name", None, {"type": "string", "enum": sorted(http_console.ASSETS)}),),
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/feed",
        http_console.feed,
        "consoleFeed",
        "Live feed (WebSocket): a snapshot, or with ?after=<seq> the feed events after that audit seq"
        " (back-fill), then live events from P.events; every item carries its seq",
        Area.CONSOLE,
        {101: Content("Switching to the WebSocket protocol.")},
        query=FeedQuery,
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/triage",
        http_console.triage,
        "consoleTriage",
        "Messages waiting in triage, newest first (audited)",
        Area.CONSOLE,
        {200: Json(ConsolePage, "The triage queue.")},
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/recipients",
        http_console.recipients,
        "consoleRecipients",
        "Recipients an operator may choose, and the crime type codes",
        Area.CONSOLE,
        {200: Json(RecipientList, "Posts, units and the centre's inbox.")},
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/message",
        http_console.message_detail,
        "consoleMessage",
        "One message: envelope, routing, matched phrases, manual decisions, audit timeline (audited)",
        Area.CONSOLE,
        {200: Json(ConsoleMessage, "The message."), **_NOT_FOUND},
        query=ConsoleMessageQuery,
        tags=_CONSOLE,
    ),
    Route(
        "POST",
        "/api/console/route",
        http_console.route,
        "consoleRoute",
        "Route a triage item, or re-route a message, to chosen recipients with a reason (audited)",
        Area.CONSOLE,
        {
            200: Json(RouteResult, "Published (confirmed) and recorded."),
            **_NOT_FOUND,
            409: Json(
                ErrorBody,
                "Another manual decision was taken (or its case changed) meanwhile: reload; or its"
                " handling marking does not allow these recipients (field `recipients`): set override_marking"
                " with override_reason.",
            ),
        },
        body=Body(RouteRequest),
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/corrections",
        http_console.corrections,
        "consoleCorrections",
        "Which rules most often needed an operator's correction of crime types or countries",
        Area.CONSOLE,
        {200: Json(Corrections, "The ten rules most often behind a correction, most first.")},
        tags=_CONSOLE,
    ),
    Route(
        "POST",
        "/api/console/config/reload",
        http_console.reload_config,
        "consoleReloadConfig",
        "Read config/ again: a valid configuration is put in force, an invalid one refused (audited)",
        Area.CONSOLE,
        {200: Json(ConfigReload, "What the reload did: changed, unchanged, or rejected with every problem.")},
        description="The same as SIGHUP on this instance only: instances sharing a database each reload"
        " on their own request (docs/configuration.md).",
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/dead",
        http_console.dead_letters,
        "consoleDeadLetters",
        "The dead-letter queue as a work queue (nothing is removed)",
        Area.CONSOLE,
        {200: Json(DeadLetterList, "Dead letters, oldest first.")},
        query=DeadLetterQuery,
        tags=_CONSOLE,
    ),
    Route(
        "POST",
        "/api/console/dead/{letter_id}/reinject",
        http_console.reinject,
        "consoleReinject",
        "Re-inject one dead letter, as it was or corrected (audited; at most once)",
        Area.CONSOLE,
        {200: Json(ReinjectResult, "Back in intake, recorded, out of the dead-letter queue."), **_NOT_FOUND},
        body=Body(ReinjectRequest),
        path_params=(PathParam("letter_id"),),
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/notes",
        http_console.list_notes,
        "consoleNotes",
        "The shift log, newest first",
        Area.CONSOLE,
        {200: Json(NoteList, "Handover notes.")},
        query=NotesQuery,
        tags=_CONSOLE,
    ),
    Route(
        "POST",
        "/api/console/notes",
        http_console.add_note,
        "consoleAddNote",
        "Write a handover note, linked to messages and cases (audited)",
        Area.CONSOLE,
        {201: Json(Note, "The note as stored.")},
        body=Body(NoteInput),
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/alerts",
        http_watch.list_alerts,
        "consoleAlerts",
        "Deadline alerts raised on open cases that no operator has acknowledged yet",
        Area.CONSOLE,
        {200: Json(http_watch.AlertList, "The alerts, oldest raised first.")},
        tags=_CONSOLE,
        description="Derived from the cases' alert flags and the `alert_acknowledged` audit events: the same"
        " list after a reload, on every instance.",
    ),
    Route(
        "POST",
        "/api/console/alerts/ack",
        http_watch.acknowledge_alert,
        "consoleAcknowledgeAlert",
        "Acknowledge one deadline alert (audited `alert_acknowledged`, on the live feed)",
        Area.CONSOLE,
        {
            200: Json(http_watch.AlertAcked, "Recorded."),
            404: Json(ErrorBody, "No such case, or no such alert raised on it."),
            409: Json(ErrorBody, "Already acknowledged (the message says by whom)."),
        },
        body=Body(http_watch.AlertAck),
        tags=_CONSOLE,
    ),
    Route(
        "GET",
        "/api/console/inbox",
        http_watch.list_inbox,
        "consoleInbox",
        "Messages for the centre's inbox (centre.inbox), newest first, with read / handled marks (audited)",
        Area.CONSOLE,
        {200: Json(http_watch.InboxList, "The inbox.")},
        tags=_CONSOLE,
    ),
    Route(
        "POST",
        "/api/console/inbox/mark",
        http_watch.mark_inbox,
        "consoleInboxMark",
        "Set or clear the read or handled mark of one inbox item (audited `inbox_marked`, on the live feed)",
        Area.CONSOLE,
        {200: Json(http_watch.InboxEntry, "The item with its marks."), **_NOT_FOUND},
        body=Body(http_watch.InboxMarkRequest),
        tags=_CONSOLE,
    ),
    Route(
        "POST",
        "/api/console/compose",
        http_watch.compose,
        "consoleCompose",
        "Write a message from the centre: checked, classified and routed like one published over AMQP",
        Area.CONSOLE,
        {
            200: Json(http_watch.Composed, "Routed (or in triage) and recorded."),
            409: Json(ErrorBody, "Its handling marking does not allow the chosen recipients."),
        },
        body=Body(http_watch.ComposeRequest),
        tags=_CONSOLE,
        description="The sender is `centre`; the operator is the session's principal (audited `composed`)."
        " Recipients the rules did not choose are added by a manual routing (audited, with its reason).",
    ),
    Route(
        "GET",
        "/api/console/glance",
        http_console.glance,
        "consoleGlance",
        "Counts by crime type and by country over the last hours (24 by default)",
        Area.CONSOLE,
        {200: Json(Glance, "The counts.")},
        query=GlanceQuery,
        tags=_CONSOLE,
    ),
)

ROUTES += (
    # -- watch lists (operators; docs/search.md) --------------------------------------------------------
    Route(
        "GET",
        "/api/watches",
        http_console.list_watches,
        "listWatches",
        "The watch list: identifiers and phrases watched, newest first",
        Area.CONSOLE,
        {200: Json(WatchList, "The watches.")},
        query=WatchesQuery,
        tags=_CONSOLE,
    ),
    Route(
        "POST",
        "/api/watches",
        http_console.add_watch,
        "addWatch",
        "Watch an identifier or a phrase, with a reason and an expiry (audited)",
        Area.CONSOLE,
        {201: Json(Watch, "The watch as stored, its value normalised.")},
        body=Body(WatchBody),
        tags=_CONSOLE,
        description="A new message that matches raises a `watch_hit` event on P.events and in the console"
        " feed, once per message and watch.",
    ),
    Route(
        "DELETE",
        "/api/watches/{watch_id}",
        http_console.end_watch,
        "endWatch",
        "End a watch (audited; it stays listed with ?live=false)",
        Area.CONSOLE,
        {200: Json(Watch, "The watch, ended."), 404: Json(ErrorBody, "No such watch.")},
        path_params=(
            PathParam("watch_id", "The watch's id.", {"type": "string", "pattern": "^[0-9]{1,18}$"}),
        ),
        tags=_CONSOLE,
    ),
)

EXTRA_SCHEMAS: tuple[type[BaseModel], ...] = (Envelope,)
"""Listed in the document for reference though no route takes them as such (senders publish
envelopes over AMQP; a corrected one is re-injected as a free-form object)."""
