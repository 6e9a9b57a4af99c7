"""One message, from raw bytes to a stored verdict and a queued reply.

`record_message` archives and records (nothing is parsed before the bytes are safe on
disk); `process_message` parses, decides and stores in one transaction together with the
reply row. Both are idempotent: running either again after a crash at any point ends in
the same state. Nothing here knows where the mail came from (IMAP, a Maildir, a test).
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections import defaultdict, deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import cache

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import joinedload

from intake import stages
from intake.app import App
from intake.archive import ArchiveError, sha256_hex
from intake.authenticity import AuthVerdict, check_sender, sender_header_problem, sender_problem
from intake.faults import checkpoint
from intake.decide import Completeness, completeness, content_status, is_late, sheet_units
from intake.routing import Route, Table, is_document, route
from intake.links import CHINA, LargeAttachment, LinkFetchError, fetch_link
from intake.mailread import FileRef, LinkRef, MailView
from intake.mime import HEADER_BLOCK_LIMIT, header_block, parse_headers, safe_filename
from intake.tracking import settle_current
from intake.trust import TRUSTED, awaits_staff, trust_level, unconfirmed_problem
from intake.unpack import ArchiveFile, MailBudget
from notifications.loops import no_reply_reason
from notifications.replies import queue_reply, reply_form, reply_kind
from parsers.crosscheck import cross_check, seal_verdict
from config.campaigns import CampaignSpec
from config.settings import Settings
from parsers.model import FileKind, FileReport, Problem, ProblemCode
from storage.models import (
    Confirmation,
    FormRowRecord,
    Message,
    MessageState,
    OutboxItem,
    ProblemRecord,
    ReplyKind,
    StoredFile,
    Submission,
    SubmissionStatus,
    Trust,
    utcnow,
)

log = logging.getLogger(__name__)
settle_current, queue_reply = stages.timing("settle")(settle_current), stages.timing("reply queue")(queue_reply)

# Reasons for no reply that mean "a machine wrote this", as opposed to "we do not know you".
NOT_AUTOMATIC = {"unknown_sender_no_attachments"}
# Mail ignored whatever it carries: a bounce's returned mail is ours or a stranger's, never a submission.
ALWAYS_IGNORED = {"bounce"}
REVIEW_CODES = {
    ProblemCode.SEAL_NOT_FOUND,
    ProblemCode.PHOTO_NOT_PDF,
    ProblemCode.SEAL_UNVERIFIABLE,
    ProblemCode.E_SEAL_UNVERIFIED,
    ProblemCode.PDF_MISMATCH,
    ProblemCode.UNIT_MISMATCH,
    ProblemCode.SENDER_UNVERIFIED,
    ProblemCode.SENDER_AMBIGUOUS,
    ProblemCode.UNIT_UNCONFIRMED,
    ProblemCode.UNSUPPORTED_FILE,
    ProblemCode.FOUND_IN_SPAM,
    ProblemCode.LINK_PENDING,
    ProblemCode.OTHER_CAMPAIGN_FORM,
}
STAFF_ROUTED = "staff"  # Submission.routed_by of a campaign staff chose: a reprocess keeps it
# Our own disk or database failing (full, locked, gone) is not the message's fault: it is
# never quarantined for that, but stays archived and the caller retries the poll later.
STORAGE_ERRORS = (ArchiveError, OperationalError)
STORE_STAGE = "store (decide, settle, reply queue, commit)"  # intake.stages' name
# Mails read ahead of the store per parser process: what one stored batch can hold.
AHEAD_PER_SLOT = 4
# How much of a quarantined mail's traceback is logged and kept.
TRACE_FRAMES = 8
TRACE_CHARS = 4000


@dataclass(frozen=True)
class Location:
    """Where a message sits: an IMAP folder and UID, or a Maildir file key."""

    account: str
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    source_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    message_pk: int
    state: MessageState
    status: SubmissionStatus | None = None
    reply: ReplyKind | None = None
    late: bool | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Archived:
    """A mail safe in the archive, with what its ledger row needs (not its bytes)."""

    digest: str
    size: int
    headers: dict


def archive_message(app: App, raw: bytes) -> Archived:
    """Archive the raw bytes durably and read the ledger's headers (no database)."""
    digest = app.archive.store("mail", raw)
    checkpoint("archive")
    return Archived(digest, len(raw), _headers_for_ledger(raw))


def record_message(app: App, raw: bytes, arrived_at: dt.datetime, location: Location) -> tuple[Message, bool]:
    """Archive the raw bytes durably, then record the message. Returns (row, created)."""
    return record_archived_together(app, [(archive_message(app, raw), arrived_at, location)])[0]


def record_archived_together(app: App, mails: list[tuple[Archived, dt.datetime, Location]]
                             ) -> list[tuple[Message, bool]]:
    """Record archived mails in the ledger in one transaction (one commit, one fsync):
    (row, created) for each, in order. The group's earlier rows are read with one query
    for their locations and one for their digests, and the new rows written in one flush."""
    with app.db.session() as session:
        seen = _at_locations(session, [location for _, _, location in mails])
        same: dict[str, list[Message]] = defaultdict(list)  # by digest, oldest first
        digests = {archived.digest for archived, _, _ in mails}
        for row in session.scalars(select(Message).where(Message.sha256.in_(digests)).order_by(Message.id)):
            same[row.sha256].append(row)
        recorded = [_record(session, seen, same, *mail) for mail in mails]
        session.flush()
    for message, created in recorded:
        if created and message.duplicate_of_id is not None:
            log.info("mail #%s uid=%s is a copy of #%s: recorded, not answered", message.id,
                     message.uid if message.uid is not None else message.source_key, message.duplicate_of_id)
    return recorded


def _record(session, seen: dict[tuple, Message], same: dict[str, list[Message]],  # noqa: ANN001 - Session
            archived: Archived, arrived_at: dt.datetime, location: Location) -> tuple[Message, bool]:
    """One mail of a group; `seen` (rows by location) and `same` (by digest) are the
    group's look-ups, kept up to date with the rows it adds."""
    digest, headers = archived.digest, archived.headers
    existing = seen.get(_location_key(location))
    if existing is not None:
        return existing, False
    # The same bytes are the same mail wherever they were seen before (another folder,
    # another spelling of the account): recorded as a duplicate, never answered again.
    stale = [
        m for m in same[digest]
        if (m.account, m.folder) == (location.account, location.folder)
        and location.uidvalidity is not None and m.uidvalidity != location.uidvalidity
    ]
    if stale:
        # The server renumbered the folder (UIDVALIDITY changed): same mail, new address.
        stale[0].uidvalidity, stale[0].uid = location.uidvalidity, location.uid
        seen[_location_key(location)] = stale[0]
        return stale[0], False
    earlier = same[digest][0] if same[digest] else None
    if earlier is not None and earlier.id is None:
        session.flush()  # a copy of a mail earlier in the group refers to its row by id
    message = Message(
        account=location.account,
        folder=location.folder,
        uidvalidity=location.uidvalidity,
        uid=location.uid,
        source_key=location.source_key,
        sha256=digest,
        size=archived.size,
        arrived_at=arrived_at,
        state=MessageState.DUPLICATE if earlier is not None else MessageState.ARCHIVED,
        duplicate_of_id=earlier.id if earlier is not None else None,
        **headers,
    )
    session.add(message)
    seen[_location_key(location)] = message
    same[digest].append(message)
    return message, True


def _location_key(location: Location) -> tuple:
    if location.source_key is not None:
        return location.account, location.folder, location.source_key
    return location.account, location.folder, location.uidvalidity, location.uid


def _at_locations(session, locations: list[Location]) -> dict[tuple, Message]:  # noqa: ANN001 - Session
    """The ledger rows already at these locations, by _location_key: one query for each
    folder (and UIDVALIDITY) among them."""
    folders: dict[tuple, list[Location]] = defaultdict(list)
    for location in locations:
        by_key = location.source_key is not None
        folders[location.account, location.folder, by_key, None if by_key else location.uidvalidity].append(location)
    found: dict[tuple, Message] = {}
    for (account, folder, by_key, uidvalidity), here in folders.items():
        query = select(Message).where(Message.account == account, Message.folder == folder)
        if by_key:
            query = query.where(Message.source_key.in_([loc.source_key for loc in here]))
        else:
            query = query.where(Message.uidvalidity == uidvalidity, Message.uid.in_([loc.uid for loc in here]))
        for row in session.scalars(query):
            found.setdefault(_location_key(Location(row.account, row.folder, row.uidvalidity, row.uid, row.source_key)), row)
    return found


@stages.timing("MIME headers (poller)")
def _headers_for_ledger(raw: bytes) -> dict:
    try:
        mail = parse_headers(raw)
    except Exception:  # noqa: BLE001 - the ledger must record even mail we cannot read
        log.exception("could not read headers; recording the message without them")
        return {}
    return {
        "message_id": mail.message_id,
        "from_name": mail.from_name[:500] or None,
        "from_address": mail.from_address,
        "to": mail.to[:2000] or None,
        "subject": mail.subject[:2000] or None,
        "date_header": mail.date_header,
    }


@dataclass
class _Parsed:
    """A message read and its attachments parsed, waiting to be stored: plain data only
    (no raw mail, no MIME tree), so waiting costs little whatever the mail's size."""

    message_pk: int
    mail: MailView | None = None
    verdict: AuthVerdict | None = None
    arrived_at: dt.datetime | None = None
    reports: list[FileReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    done: Outcome | None = None  # nothing to do: already processed
    error: BaseException | None = None


@stages.timing("read+parse, wall per mail (poller threads)")
def _parse(app: App, message_pk: int, force: bool) -> _Parsed:
    with app.db.session() as session:
        # Four columns, not the ORM object: this runs in the poller's threads beside the store.
        found = session.execute(select(Message.state, Message.sha256, Message.arrived_at, Message.size)
                                .where(Message.id == message_pk)).one_or_none()
        if found is None:
            raise LookupError(f"no message {message_pk}")
        state, digest, arrived_at, size = found
        if state is not MessageState.ARCHIVED and not (force and state is not MessageState.DUPLICATE):
            return _Parsed(message_pk, done=_outcome(session.get(Message, message_pk)))
    try:
        # This process reads only the header block; the whole mail is parsed in a parser
        # process (intake.mailread), which also files its attachments into the archive.
        head = header_block(app.archive.read_start("mail", digest, HEADER_BLOCK_LIMIT))
        budget = MailBudget(app.settings.limits)
        mail, files, problems = _read_mail(app, digest, size, head, budget)
        if app.settings.links.download:
            fetched, failed = download_links(app, mail.links, budget)
            files, problems = [*files, *fetched], [*problems, *failed]
        reports, refused = _parse_files(app, files, budget)
        verdict = _check_sender(app, digest, head, mail)
        return _Parsed(message_pk, mail, verdict, arrived_at, reports, [*problems, *refused])
    except Exception as err:  # noqa: BLE001 - _finish quarantines it (storage errors: retried later)
        return _Parsed(message_pk, error=err)


def _finish(app: App, parsed: _Parsed) -> Outcome:
    """Store one parsed mail in its own transaction; quarantine it if that fails."""
    if parsed.done is not None:
        return parsed.done
    try:
        if parsed.error is not None:
            raise parsed.error
        return _store_together(app, [parsed])[0]
    except STORAGE_ERRORS:
        raise
    except Exception as err:  # noqa: BLE001 - one bad message must never block the rest
        return _quarantine(app, parsed.message_pk, err)


def _finish_batch(app: App, batch: list[_Parsed]) -> list[Outcome]:
    """Store the parsed mails that are ready in one transaction (one commit, one fsync,
    instead of one each); their replies are queued in it, so none is sent before all are
    committed. A mail that fails takes the batch back: then each is stored alone, as
    _finish does, and only the failing one is quarantined."""
    ready = [p for p in batch if p.done is None and p.error is None]
    if len(ready) < 2:
        return [_finish(app, p) for p in batch]
    try:
        stored = dict(zip((p.message_pk for p in ready), _store_together(app, ready), strict=True))
    except STORAGE_ERRORS:
        raise
    except Exception:  # noqa: BLE001 - found again, and quarantined, one by one below
        log.warning("a mail of a batch of %s could not be stored; storing them one at a time", len(ready))
        return [_finish(app, p) for p in batch]
    return [stored[p.message_pk] if p.message_pk in stored else _finish(app, p) for p in batch]


def _store_together(app: App, parsed: list[_Parsed]) -> list[Outcome]:
    """Store these in one transaction; once it has committed, log what was stored (a
    transaction taken back logs nothing)."""
    for _ in parsed:
        checkpoint("parse")
    notes: list[str] = []
    started = stages.clock()
    with app.db.session() as session:
        held = _ledger_rows(session, parsed)  # noqa: F841 - held while they are stored
        outcomes = [_store(app, session, p, notes) for p in parsed]
    stages.add(STORE_STAGE, stages.clock() - started, len(parsed))
    for _ in parsed:
        checkpoint("commit")
        stages.event("stored")
    for note in notes:
        log.info("%s", note)
    return outcomes


def _ledger_rows(session, parsed: list[_Parsed]) -> list[Message]:  # noqa: ANN001 - Session
    """A batch's ledger rows with their submissions, in one query. Held by the caller while
    it stores them (a session keeps its objects by weak reference), each _store finds its
    row in the session instead of querying for it."""
    if len(parsed) < 2:
        return []
    return list(session.scalars(_with_submission().where(Message.id.in_([p.message_pk for p in parsed]))))


@cache
def _with_submission() -> Select:
    return select(Message).options(joinedload(Message.submission))


def _quarantine(app: App, message_pk: int, err: BaseException) -> Outcome:
    failure = failure_text(err)
    log.error("message %s quarantined: %s", message_pk, failure)  # once, trimmed: no exc_info
    with app.db.session() as session:
        message = session.get(Message, message_pk)
        message.state = MessageState.QUARANTINED
        message.error = failure
        message.processed_at = utcnow()
        return _outcome(message)


def failure_text(err: BaseException) -> str:
    """The error's first line, then the innermost frames of its traceback, bounded: a
    recursion error's traceback runs to thousands of lines that say nothing more."""
    frames = traceback.TracebackException.from_exception(err, limit=-TRACE_FRAMES)
    trace = "".join(frames.format())
    if len(trace) > TRACE_CHARS:
        trace = "…\n" + trace[-TRACE_CHARS:]
    return f"{type(err).__name__}: {str(err)[:500]}\n{trace}"


def process_message(app: App, message_pk: int, *, force: bool = False) -> Outcome:
    """Parse, decide and store one archived message; quarantine it if that fails."""
    return _finish(app, _parse(app, message_pk, force))


def process_messages(app: App, message_pks: Iterable[int], *, force: bool = False) -> list[Outcome]:
    """The same for many, in order: later messages are read and their attachments parsed
    (in parser processes) while earlier ones are stored, those parsed by then in one
    transaction (_finish_batch). `message_pks` is read lazily, a few ahead of the store:
    the poller's fetch-and-record generator keeps the parser processes busy while it
    fetches. A parsed mail waiting to be stored is plain data (`_Parsed`), so only their
    number is bounded."""
    ahead = AHEAD_PER_SLOT * app.parse_slots
    source = iter(message_pks)
    pending: deque[Future[_Parsed]] = deque()
    outcomes: list[Outcome] = []

    def refill() -> None:
        # From half full up, in one go: the poller records the mails its fetcher has piled
        # up meanwhile together (one transaction for several), not one at a time.
        if len(pending) > ahead // 2:
            return
        while len(pending) < ahead and (pk := next(source, None)) is not None:
            pending.append(app.parse_pool.submit(_parse, app, pk, force))

    refill()
    while pending:
        with stages.timed("wait for a parsed mail (poller)"):
            batch = [pending.popleft().result()]
        refill()
        while pending and pending[0].done():
            batch.append(pending.popleft().result())
            refill()
        outcomes += _finish_batch(app, batch)
    return outcomes


def ingest(app: App, raw: bytes, arrived_at: dt.datetime, location: Location) -> Outcome:
    message, _created = record_message(app, raw, arrived_at, location)
    return process_message(app, message.id)


def _read_mail(app: App, digest: str, size: int, head: bytes, budget: MailBudget
               ) -> tuple[MailView, list[FileRef], list[Problem]]:
    """The mail as plain data, the files to parse and the problems found reading it
    (`size` as the ledger recorded it)."""
    headers = parse_headers(head)
    limits = app.settings.limits
    if size > limits.max_message_bytes:
        # Over the size limit nothing is read but the headers: parsing is what costs memory.
        return MailView.of(headers), [], [Problem(ProblemCode.TOO_LARGE, f"邮件大小 {size // (1024 * 1024)} MB 超过上限，附件未读取，请压缩或分开发送。")]
    content = app.read_mail(digest, seconds=budget.seconds_left())
    return MailView.of(headers, content), content.files, content.problems


def _parse_files(app: App, files: list[FileRef], budget: MailBudget) -> tuple[list[FileReport], list[Problem]]:
    """Each archived file parsed in a parser process, within the mail's budget."""
    limits = app.settings.limits
    reports: list[FileReport] = []
    refused: list[Problem] = []
    for file in files:
        if (problem := budget.refuse_file(file.name)) is not None:
            refused.append(problem)
            continue
        seconds = budget.file_seconds()
        # Cut short by the mail's time rather than the file's: say so in the problem.
        cut_short = budget.out_of_time(file.name) if seconds < limits.seconds_per_file else None
        reports.append(app.parse_path(app.archive.path("files", file.digest), file.name, file.parent, seconds=seconds,
                                      timeout_problem=cut_short))
    return reports, refused


def _check_sender(app: App, digest: str, head: bytes, mail: MailView) -> AuthVerdict:
    """Authentication-Results need only the header block; our own DKIM check needs the
    whole mail, so only with verify_dkim is the mail read here (in its parse thread)."""
    authenticity = app.settings.authenticity
    return check_sender(
        app.archive.read("mail", digest) if authenticity.verify_dkim else head,
        from_address=mail.from_address,
        trusted_authserv_ids=authenticity.trusted_authserv_ids,
        verify_dkim=authenticity.verify_dkim,
    )


def _store(app: App, session, parsed: _Parsed, notes: list[str]) -> Outcome:  # noqa: ANN001 - Session
    """Decide and store one parsed mail in the caller's transaction; what to log once it
    commits goes to `notes`."""
    settings = app.settings
    message_pk, mail, verdict, arrived_at = parsed.message_pk, parsed.mail, parsed.verdict, parsed.arrived_at
    reports, unpack_problems = parsed.reports, parsed.problems
    # A mail whose parts are lost (boundary never found) and that names no attachment has
    # sent nothing: its MIME problem is no file (an unknown sender's gets no reply).
    has_files = (bool(reports) or bool(mail.links)
                 or (bool(unpack_problems) and not (mail.parts_lost and not mail.attachments)))
    for report in reports:
        if report.derived_pdf:  # a photo's PDF is kept beside the original (archive first)
            app.archive.store("files", report.derived_pdf)
    reason = no_reply_reason(
        mail,
        sender=mail.from_address,
        our_addresses=app.our_addresses,
        known_sender=app.registry.by_sender(mail.from_address) is not None,
        has_attachments=has_files,
    )
    # With its submission (none on a first processing) in the same query, unless the
    # batch's query has loaded both (_store_together).
    message = session.get(Message, message_pk, options=[joinedload(Message.submission)])
    copy_of = message.submission is None and same_mail_delivered_before(session, message, reports, mail.links)
    # The message's own fields are set once, before anything is flushed: one UPDATE of
    # its row with the submission's INSERT (the transaction is taken back on any failure).
    message.auth_results = verdict.as_dict()
    message.processed_at = utcnow()
    message.error = None
    if copy_of:
        return _record_copy(message, copy_of, notes)
    message.state = MessageState.PROCESSED
    if reason == "bounce":
        note_bounce(session, mail)
    first_time = message.submission is None
    submission = message.submission or Submission(message=message)
    _reset(submission)
    late = False
    spam = _in_extra_folder(message, settings)
    if spam and not _registered_sender(app, mail, verdict):
        # Spam folders hold mostly spam: a stranger's mail there is kept, never answered.
        _fill(submission, status=SubmissionStatus.IGNORED, late=late, reply=ReplyKind.NONE, suppressed="spam_folder")
        session.add(submission)
        settle_current(session, submission)
    elif reason in ALWAYS_IGNORED or (not has_files and reason is not None):
        status = SubmissionStatus.IGNORED
        _fill(submission, status=status, late=late, reply=ReplyKind.NONE, suppressed=reason)
        session.add(submission)
        settle_current(session, submission)
    elif (routed := _route(settings, submission, mail, reports, arrived_at)).campaign is None:
        _store_other(app, session, submission, mail, verdict, reports, routed, reason)
    else:
        campaign = routed.campaign
        late = is_late(arrived_at, campaign.deadline)
        reports, foreign = _of_campaign(reports, campaign)
        linked = frozenset().union(*(LargeAttachment(**vars(link)).covers for link in mail.links))
        done = completeness(reports, linked, requires_pdf=campaign.requires_pdf,
                            requires_editable=campaign.requires_editable)
        written_units = sheet_units(reports)
        match = app.registry.match(
            sender=mail.from_address, sheet_units=written_units, subject=mail.subject, body=mail.body_text
        )
        problems = [*unpack_problems, *(p for r in reports for p in r.problems),
                    *cross_check(reports, settings.campaign_set.forms)]
        problems += [*done.problems, *match.problems, *pending_links(mail.links, done), *foreign]
        if settings.authenticity.require and (unverified := sender_problem(verdict, mail.from_address)):
            problems.append(unverified)
        if ambiguous := sender_header_problem(mail):
            problems.append(ambiguous)
        if spam:
            problems.append(Problem(ProblemCode.FOUND_IN_SPAM, f"该邮件在垃圾邮件文件夹（{message.folder}）中找到，已按正常报送处理；"
                                                               "请在邮箱中把该单位的地址加入白名单。"))
        status = content_status(problems, has_pdf=done.pdf_ok, has_editable=done.editable_ok,
                                attachments=len(reports), linked=linked)
        # A closed campaign's mail is marked CLOSED even when it is not answered (automatic
        # mail): intake.tracking holds it back from the unit's record until staff accept it.
        reply = ReplyKind.CLOSED if routed.closed else ReplyKind.NONE if reason else reply_kind(status, late)
        _fill(submission, status=status, late=late, reply=reply, suppressed=reason)
        _routed(submission, routed)
        if not submission.assigned_by:  # a unit staff named stays named
            submission.unit = match.unit.name if match.unit else None
            submission.unit_source = match.source if match.unit else None
            submission.trust = trust_level(unit_source=submission.unit_source, auth=message.auth_results)
        if submission.confirmed_by is None:  # staff's word survives a reprocess
            submission.confirmation = Confirmation.PENDING if submission.trust is Trust.CLAIMED else None
        if awaits_staff(submission):
            problems.append(unconfirmed_problem(submission))
        submission.sheet_unit = (written_units or [None])[0]
        submission.has_pdf, submission.has_editable = done.has_pdf, done.has_editable
        submission.seal = seal_verdict(reports)
        submission.ocr_pending = settings.parsing.ocr and any(
            r.pdf is not None and not r.pdf.has_text for r in reports
        )
        _attach(submission, reports, problems, mail.archives, campaign)
        _attach_links(submission, mail.links)
        submission.needs_review = (
            late
            or routed.closed
            or awaits_staff(submission)
            or reason is not None
            or status is SubmissionStatus.INVALID
            or submission.unit is None
            or any(p.code in REVIEW_CODES for p in problems)
        )
        answered = reply is not ReplyKind.NONE and reason is None
        if answered and first_time:
            # The form queue_reply records when it queues the reply (nearly always), set
            # now: in the submission's INSERT, not an UPDATE after it.
            submission.reply_form = reply_form(submission)
        session.add(submission)
        session.flush()
        replaced = settle_current(session, submission, first=first_time)
        if answered:
            queue_reply(session, submission, original=mail, settings=settings, replaces=replaced, first=first_time)
    session.flush()
    where = message.uid if message.uid is not None else message.source_key
    trust = submission.trust.value if submission.trust else "-"
    notes.append(f"mail #{message.id} uid={where} from={message.from_address} campaign={submission.campaign or '-'} "
                 f"unit={submission.unit} trust={trust} verdict={submission.status.value}"
                 f"{' (late)' if submission.late else ''} reply={submission.reply.value}"
                 f"{f' ({submission.reply_suppressed})' if submission.reply_suppressed else ''}")
    return _outcome(message)


def _route(settings: Settings, submission: Submission, mail: MailView, reports: list[FileReport],
           arrived_at: dt.datetime) -> Route:
    """The mail's campaign (intake.routing), judged at its arrival; a campaign staff
    chose stands while it is configured."""
    campaigns = settings.campaign_set
    if submission.routed_by == STAFF_ROUTED and (chosen := campaigns.get(submission.campaign)) is not None:
        closed = not chosen.is_open(arrived_at)
        return Route(chosen, STAFF_ROUTED, submission.routing or "工作人员归入", closed)
    names = [r.name for r in reports] + [a.name for a in mail.archives]
    return route(
        tables=[Table(t.form, len(t.rows)) for r in reports for t in r.forms],
        pdf_forms=[key for r in reports if r.pdf is not None for key in r.pdf.forms],
        subject=mail.subject or "",
        file_names=names,
        documents=any(r.kind.editable or r.kind in (FileKind.PDF, FileKind.OFD) or is_document(r.name) for r in reports),
        campaigns=campaigns,
        now=arrived_at,
    )


def _routed(submission: Submission, routed: Route) -> None:
    submission.campaign = routed.campaign.id if routed.campaign else None
    submission.routed_by = routed.routed_by
    submission.routing = routed.reason


def _of_campaign(reports: list[FileReport], campaign: CampaignSpec) -> tuple[list[FileReport], list[Problem]]:
    """The reports with only this campaign's tables, and a warning per table of another
    campaign's form (kept out of the rows; the file's own problems with it)."""
    keys = {f.key for f in campaign.forms}
    kept, warnings = [], []
    for report in reports:
        foreign = [t for t in report.forms if t.form not in keys]
        if not foreign:
            kept.append(report)
            continue
        ours = [t for t in report.forms if t.form in keys]
        # A file holding only another campaign's tables: its cell problems are about that campaign.
        problems = report.problems if ours else [p for p in report.problems if p.cell is None]
        kept.append(replace(report, forms=ours, problems=problems))
        for table in foreign:
            warnings.append(Problem(ProblemCode.OTHER_CAMPAIGN_FORM,
                                    f"《{report.name}》中的表格（{table.location}）属于另一项征集，未计入本次报送。",
                                    report.name))
    return kept, warnings


def _store_other(app: App, session, submission: Submission, mail: MailView,  # noqa: ANN001 - Session
                 verdict: AuthVerdict, reports: list[FileReport], routed: Route, reason: str | None) -> None:
    """Mail routed to no campaign: recorded as `other` for staff (其他来信), never a
    record and never a campaign reply; a registered unit may get a plain acknowledgement."""
    match = app.registry.match(sender=mail.from_address, sheet_units=[], subject=mail.subject, body=mail.body_text)
    acknowledge = (app.settings.other_mail.acknowledge and reason is None
                   and _registered_sender(app, mail, verdict))
    _fill(submission, status=SubmissionStatus.OTHER, late=False,
          reply=ReplyKind.OTHER if acknowledge else ReplyKind.NONE, suppressed=reason)
    _routed(submission, routed)
    if not submission.assigned_by:
        submission.unit = match.unit.name if match.unit else None
        submission.unit_source = match.source if match.unit else None
    submission.trust = trust_level(unit_source=submission.unit_source, auth=verdict.as_dict())
    submission.confirmation = None
    submission.sheet_unit = None
    submission.has_pdf = any(r.kind in (FileKind.PDF, FileKind.OFD, FileKind.PHOTO) for r in reports)
    submission.has_editable = any(r.kind.editable for r in reports)
    submission.seal, submission.ocr_pending, submission.needs_review = None, False, False
    _attach(submission, reports, [], mail.archives, None)
    _attach_links(submission, mail.links)
    session.add(submission)
    settle_current(session, submission)
    if acknowledge:
        queue_reply(session, submission, original=mail, settings=app.settings)


def same_mail_delivered_before(session, message: Message, reports: list[FileReport],  # noqa: ANN001
                               links: tuple[LinkRef, ...] = ()) -> Message | None:
    """The first processed copy of this mail that reached us by another route (same
    Message-ID, sender, subject and files: the trace headers differ, so the bytes do)."""
    if not message.message_id or not message.from_address:
        return None
    digests = {r.sha256 for r in reports} | {link_digest(link) for link in links}
    earlier = session.scalars(_earlier_deliveries(message.subject is None),
                              {"message_id": message.message_id, "from_address": message.from_address,
                               "subject": message.subject, "id": message.id})
    return next((m for m in earlier if m.submission and {f.sha256 for f in m.submission.files} == digests), None)


@cache  # built once (per shape): building and keying it cost more than running it
def _earlier_deliveries(no_subject: bool) -> Select:
    subject = Message.subject.is_(None) if no_subject else Message.subject == bindparam("subject")
    return select(Message).where(
        Message.message_id == bindparam("message_id"),
        Message.from_address == bindparam("from_address"),
        subject,
        Message.state == MessageState.PROCESSED,
        Message.id < bindparam("id"),
    ).order_by(Message.id)


def _record_copy(message: Message, first: Message, notes: list[str]) -> Outcome:
    message.state = MessageState.DUPLICATE
    message.duplicate_of_id = first.id
    notes.append(f"mail #{message.id} is another delivery of #{first.id} (same Message-ID, sender and files): "
                 "recorded, not answered")
    return _outcome(message)


def pending_links(links: tuple[LinkRef, ...], done: Completeness) -> list[Problem]:
    """A warning for staff per link that stands for a missing part: name, expiry, URL."""
    problems = []
    for link in links:
        covers = LargeAttachment(**vars(link)).covers
        if ("pdf" in covers and not done.has_pdf) or ("editable" in covers and not done.has_editable):
            expiry = f"，{link.expires_at.astimezone(CHINA):%Y-%m-%d %H:%M} 到期" if link.expires_at else ""
            problems.append(Problem(ProblemCode.LINK_PENDING,
                                    f"超大附件《{link.name or '未写明文件名'}》以链接发送，待工作人员下载{expiry}：{link.url[:300]}",
                                    link.name))
    return problems


def download_links(app: App, links: tuple[LinkRef, ...], budget: MailBudget) -> tuple[list[FileRef], list[Problem]]:
    """[links] download: each link's file fetched (provider hosts only, byte and time
    caps) into the archive, to be parsed like an attachment; a failure is a warning."""
    settings = app.settings.links
    files, problems = [], []
    for link in links:
        try:
            fetched = fetch_link(link.url, max_bytes=settings.max_bytes, hosts=frozenset(settings.hosts),
                                 seconds=min(settings.seconds, max(budget.seconds_left(), 1.0)))
        except LinkFetchError as err:
            problems.append(Problem(ProblemCode.LINK_PENDING, f"超大附件《{link.name or '未写明文件名'}》未能自动下载：{err}", link.name))
            continue
        name = safe_filename(fetched.name or link.name or "超大附件")
        files.append(FileRef(name, app.archive.store("files", fetched.data)))
    return files, problems


def note_bounce(session, mail: MailView) -> None:  # noqa: ANN001
    """Mark the replies a bounce returns as not delivered, for staff (failed delivery)."""
    if not mail.returned_ids:
        return
    reason = (mail.delivery_status or mail.subject or "退信")[:500]
    for item in session.scalars(select(OutboxItem).where(OutboxItem.message_id.in_(mail.returned_ids))):
        if item.bounced_at is None:
            item.bounced_at, item.bounce_reason = utcnow(), reason
            log.warning("outbox #%s to %s bounced: %s", item.id, item.to_address, reason)


def _in_extra_folder(message: Message, settings) -> bool:  # noqa: ANN001 - config.settings.Settings
    """Mail fetched over IMAP from a folder other than the watched one came from an extra
    (spam) folder: the poller reads no other (intake.mailbox.extra_folders)."""
    return message.uid is not None and message.folder != settings.mailbox.folder


def _registered_sender(app: App, mail: MailView, verdict: AuthVerdict) -> bool:
    """From is a registered address and its checks did not fail (trust verified/registered)."""
    if app.registry.by_sender(mail.from_address) is None:
        return False
    return trust_level(unit_source="sender", auth=verdict.as_dict()) in TRUSTED


def _reset(submission: Submission) -> None:
    """Reprocessing replaces what a submission holds but keeps its id (replies point at it)."""
    if submission.id is None:
        # A new submission's lists are known empty: set, not cleared, they stay loaded
        # after the flush (no SELECT each when the reply reads them).
        submission.files, submission.problems, submission.rows = [], [], []
        submission.reply_form = None  # loaded too: setting it later then compares, not SELECTs
    else:
        submission.files.clear()
        submission.problems.clear()
        submission.rows.clear()
    submission.superseded_by_id = None
    if submission.routed_by != STAFF_ROUTED:  # staff's choice of campaign survives a reprocess
        submission.campaign = submission.routed_by = submission.routing = None


def _fill(submission: Submission, *, status: SubmissionStatus, late: bool, reply: ReplyKind, suppressed: str | None) -> None:
    submission.status = submission.content_status = status
    submission.late = late
    submission.reply = reply
    submission.reply_suppressed = suppressed
    if status is SubmissionStatus.IGNORED:
        submission.unit = submission.unit_source = submission.sheet_unit = None
        submission.trust, submission.confirmation = Trust.UNKNOWN, None
        submission.has_pdf = submission.has_editable = False
        submission.seal = None
        submission.needs_review = False


def _attach_links(submission: Submission, links: tuple[LinkRef, ...]) -> None:
    """A link is listed like a file: name and size as the body states them, URL, expiry."""
    for link in links:
        submission.files.append(StoredFile(name=link.name or "（未写明文件名）", kind=FileKind.LINK.value,
                                           sha256=link_digest(link), size=link.size or 0,
                                           url=link.url, expires_at=link.expires_at))


def link_digest(link: LinkRef) -> str:
    return sha256_hex(link.url.encode())


def _attach(submission: Submission, reports: list[FileReport], problems: list[Problem],
            archives: tuple[ArchiveFile, ...] = (), campaign: CampaignSpec | None = None) -> None:
    for archive in archives:  # listed whatever became of their members (refused ones too)
        submission.files.append(StoredFile(name=archive.name, kind=archive.kind, sha256=archive.digest,
                                           size=archive.size, parent=archive.parent))
    for report in reports:
        submission.files.append(
            StoredFile(
                name=report.name,
                kind=report.kind.value,
                sha256=report.sha256,
                size=report.size,
                parent=report.parent,
                pdf_pages=report.pdf.pages if report.pdf else None,
                seal=report.pdf.seal if report.pdf else None,
                seal_kind=report.pdf.seal_kind.value if report.pdf and report.pdf.seal_kind else None,
                signer=report.pdf.signer if report.pdf else None,
                derived_sha256=sha256_hex(report.derived_pdf) if report.derived_pdf else None,
            )
        )
    for problem in problems:
        submission.problems.append(
            ProblemRecord(
                code=problem.code.value,
                severity=problem.severity.value,
                message=problem.message,
                file=problem.file,
                cell=problem.cell,
            )
        )
    if campaign is None:
        return
    forms = {f.key: f.id for f in campaign.forms}
    ordinal = dict.fromkeys(forms.values(), 0)
    for report in reports:
        for table in report.forms:
            if table.form not in forms:
                continue  # another campaign's form (a warning already says so)
            form_id = forms[table.form]
            for row in table.rows:
                ordinal[form_id] += 1
                submission.rows.append(FormRowRecord(form=form_id, ordinal=ordinal[form_id], cell=row.cell,
                                                     values=dict(row.values), as_written=row.as_written or None))


def _outcome(message: Message) -> Outcome:
    submission = message.submission
    return Outcome(
        message_pk=message.id,
        state=message.state,
        status=submission.status if submission else None,
        reply=submission.reply if submission else None,
        late=submission.late if submission else None,
        unit=submission.unit if submission else None,
    )

