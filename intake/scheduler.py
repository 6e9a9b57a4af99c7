"""`intake run`: watch the mailbox (IDLE where offered, polling otherwise) and run the
periodic jobs (outbox, daily digest, reminders) with APScheduler.

One IMAP connection is kept open: QQ Mail throttles clients that log in on every poll.
Network errors reconnect with exponential backoff; SIGTERM stops cleanly between steps.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from imap_tools.errors import MailboxTaggedResponseError, UnexpectedCommandStatusError

from intake import mailbox as imap
from intake.app import App
from intake.login_pause import LoginPause, clear_pause, current_pause, record_pause
from intake.ocr_followup import run_pending_ocr
from intake.pipeline import STORAGE_ERRORS
from intake.poller import PollReport, poll_imap, poll_maildir
from notifications.digest import queue_digest
from notifications.outbox import Outbox
from notifications.reminders import queue_reminders
from storage.models import utcnow

log = logging.getLogger(__name__)

RECOVERABLE = (imap.MailboxError, MailboxTaggedResponseError, UnexpectedCommandStatusError, *imap.NETWORK_ERRORS)
MAX_BACKOFF = 300.0
# Logins refused in a row before `[mailbox] auth_pause`: providers lock accounts that keep trying.
AUTH_FAILURES_BEFORE_PAUSE = 3


class Runner:
    def __init__(
        self,
        app: App,
        *,
        on_poll: Callable[[PollReport], None] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.app = app
        self.stop_event = threading.Event()
        self.outbox = Outbox(app.db, app.settings)
        self._outbox_lock = threading.Lock()
        self.on_poll = on_poll
        self.clock = clock
        self.backoff = 1.0
        self.auth_failures = 0
        # In memory on purpose: a restart (after fixing the password) tries at once.
        self.paused_until: dt.datetime | None = None

    # --- jobs ---------------------------------------------------------------------

    def send_outbox(self) -> None:
        with self._outbox_lock:
            self.outbox.send_pending()

    def digest_job(self) -> None:
        self.app.refresh_settings()  # staff may have moved the deadline since the last job
        with self.app.db.session() as session:
            queue_digest(session, self.app.settings, now=utcnow())
        self.send_outbox()

    def reminders_job(self) -> None:
        self.app.refresh_settings()
        with self.app.db.session() as session:
            queue_reminders(session, self.app.settings, now=utcnow())
        self.send_outbox()

    def digest_due_at_start(self, now: dt.datetime) -> bool:
        """A digest whose slot passed while we were down is sent at start (once: dedupe key)."""
        digest = self.app.settings.digest
        local = now.astimezone(ZoneInfo(digest.timezone))
        slot = dt.datetime.combine(local.date(), dt.time.fromisoformat(digest.at), local.tzinfo)
        return bool(digest.recipients) and local >= slot

    def _after_poll(self, report: PollReport) -> None:
        if report.new or report.outcomes:
            log.info("%s", report.summary())
            self.send_outbox()
        if self.on_poll:
            self.on_poll(report)

    # --- mailbox loop ---------------------------------------------------------------

    def watch(self) -> None:
        settings = self.app.settings.mailbox
        if settings.source == "maildir":
            while not self.stop_event.is_set():
                self.app.refresh_settings()
                self._after_poll(poll_maildir(self.app))
                self.stop_event.wait(settings.poll_seconds)
            return
        while not self.stop_event.is_set():
            self.stop_event.wait(self.watch_once())

    def watch_once(self) -> float:
        """One connection: log in, then poll (and IDLE) until it drops or we are stopped.
        Returns the seconds to wait before the next connection."""
        settings = self.app.settings.mailbox
        if self.paused_until is not None and self.clock() < self.paused_until:
            return (self.paused_until - self.clock()).total_seconds()
        try:
            with imap.open_mailbox(settings) as mailbox:
                self._logged_in()
                use_idle = settings.idle and imap.supports_idle(mailbox)
                log.info("connected to %s (%s)", settings.host, "IDLE" if use_idle else f"poll every {settings.poll_seconds}s")
                while not self.stop_event.is_set():
                    self.app.refresh_settings()
                    self._after_poll(poll_imap(self.app, mailbox))
                    self.backoff = 1.0
                    if use_idle:
                        self._idle(mailbox)
                    else:
                        self.stop_event.wait(settings.poll_seconds)
            return 0.0
        except STORAGE_ERRORS as err:
            # Before RECOVERABLE: a full disk is an OSError too, but not the mailbox's.
            log.error("cannot store mail (%s); nothing is lost, the poll is retried in %.0fs", err, self.backoff)
            return self._next_backoff()
        except imap.MailboxAuthError as err:
            return self._login_refused(err)
        except RECOVERABLE as err:
            log.warning("mailbox unavailable (%s); reconnecting in %.0fs", err, self.backoff)
            return self._next_backoff()

    def _next_backoff(self) -> float:
        delay, self.backoff = self.backoff, min(self.backoff * 2, MAX_BACKOFF)
        return delay

    def _logged_in(self) -> None:
        self.auth_failures, self.paused_until = 0, None
        with self.app.db.session() as session:
            if current_pause(session) is not None:  # a read: a login must not wait on a busy database
                clear_pause(session)

    def _login_refused(self, err: imap.MailboxAuthError) -> float:
        """A wrong password is not a network blip: after a few refusals, stop for a while."""
        self.auth_failures += 1
        if self.auth_failures < AUTH_FAILURES_BEFORE_PAUSE:
            log.warning("mailbox login refused (%s of %s before pausing; retrying in %.0fs): %s",
                        self.auth_failures, AUTH_FAILURES_BEFORE_PAUSE, self.backoff, err)
            return self._next_backoff()
        pause = self.app.settings.mailbox.auth_pause
        self.paused_until = self.clock() + pause
        with self.app.db.session() as session:
            record_pause(session, LoginPause(self.paused_until, str(err), self.auth_failures))
        log.error("mailbox login refused %s times in a row: not trying again until %s (%s); fix the password "
                  "(or the provider's authorization code) and restart to try at once: %s",
                  self.auth_failures, self.paused_until.isoformat(timespec="seconds"), pause, err)
        self.auth_failures, self.backoff = 0, 1.0
        return pause.total_seconds()

    def _idle(self, mailbox) -> None:  # noqa: ANN001 - an imap_tools BaseMailBox
        """IDLE until the server reports new mail, the IDLE period ends, or we are stopped.
        Polled in one-second slices so SIGTERM never waits for a 25-minute IDLE."""
        settings = self.app.settings.mailbox
        mailbox.idle.start()
        closed = False
        try:
            deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.idle_seconds)
            while not self.stop_event.is_set() and dt.datetime.now(dt.UTC) < deadline:
                lines = mailbox.idle.poll(timeout=1.0)
                if any(b"EXISTS" in line for line in lines):
                    return
                if imap.server_closed(mailbox):
                    closed = True
                    raise imap.MailboxError("邮箱服务器在 IDLE 期间断开了连接")
        finally:
            if not closed:  # DONE on a dead connection would only hide the reason
                mailbox.idle.stop()

    # --- lifecycle ------------------------------------------------------------------

    def run(self) -> None:
        settings = self.app.settings
        scheduler = BackgroundScheduler(timezone=ZoneInfo(settings.digest.timezone))
        scheduler.add_job(self.send_outbox, "interval", seconds=30, id="outbox", max_instances=1, coalesce=True)
        hour, minute = settings.digest.at.split(":")
        if settings.digest.recipients:
            scheduler.add_job(
                self.digest_job,
                CronTrigger(hour=int(hour), minute=int(minute), timezone=ZoneInfo(settings.digest.timezone)),
                id="digest", max_instances=1, coalesce=True, misfire_grace_time=3600,
            )
        if settings.parsing.ocr:
            scheduler.add_job(lambda: run_pending_ocr(self.app), "interval", seconds=60, id="ocr",
                              max_instances=1, coalesce=True)
        if settings.reminders.enabled:
            scheduler.add_job(self.reminders_job, "interval", minutes=10, id="reminders", max_instances=1, coalesce=True)
        previous = {sig: signal.signal(sig, self._handle_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        scheduler.start()
        try:
            if self.digest_due_at_start(utcnow()):
                self.digest_job()
            self.send_outbox()
            self.watch()
        finally:
            scheduler.shutdown(wait=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("stopped")

    def _handle_signal(self, signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current step", signum)
        self.stop_event.set()
