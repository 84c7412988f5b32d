"""What operations can see of one bot process, in Prometheus' text format (`GET /metrics`, see
docs/operations.md for what to alert on).

One `Metrics` per app, on its own `CollectorRegistry` (no process-wide state: two apps in one
process, as tests make them, do not count into each other). Labels are bounded and carry no data: a
turn's kind (`message`, `invoke`, `other`, `unknown`) and HTTP status, a Partner Center operation
as `operation_of` names it (ids replaced by `{id}`) and the outcome (HTTP status, `timeout`,
`connection_error`). Queue gauges are read from the database when scraped (`refresh`).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.alerts import AlertService
from services.jobs import JobQueueDepth, JobService
from services.mail import Mailer, MailOutboxDepth

# Teams gives a bot 15 s to answer (and shows a turn slower than ~2 s as slow); the buckets resolve
# the fast turns and the window's edge.
TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0)
PARTNER_CENTER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
TURN_KINDS = frozenset({"message", "invoke"})


def turn_kind(activity_type: str | None) -> str:
    """A turn's label: `message`, `invoke`, another activity type as `other`, none known as `unknown`."""
    if not activity_type:
        return "unknown"
    return activity_type if activity_type in TURN_KINDS else "other"


@dataclass(frozen=True)
class Snapshot:
    """What `refresh` reads from the database for the queue gauges."""

    jobs: JobQueueDepth
    mail: MailOutboxDepth
    open_alerts: int


async def read_snapshot(jobs: JobService, mailer: Mailer, alerts: AlertService) -> Snapshot:
    return Snapshot(await jobs.depth(), await mailer.outbox_depth(), await alerts.open_count())


class Metrics:
    def __init__(self, version: str = "") -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.turn_seconds = Histogram(
            "cspbot_turn_seconds",
            "Time from a request on /api/messages being admitted to its answer, by activity kind.",
            ["kind"],
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self.turns = Counter(
            "cspbot_turns",
            "Requests on /api/messages that were admitted, by activity kind and HTTP status answered.",
            ["kind", "status"],
            registry=registry,
        )
        self.turns_shed = Counter(
            "cspbot_turns_shed",
            "Requests on /api/messages answered 503 + Retry-After at once because MAX_CONCURRENT_TURNS were "
            "in flight or MAX_WORKING_TURNS working (Teams sends them again).",
            registry=registry,
        )
        self.turns_in_flight = Gauge(
            "cspbot_turns_in_flight", "Turns running now (at most MAX_CONCURRENT_TURNS).", registry=registry
        )
        self.turns_limit = Gauge("cspbot_turns_limit", "MAX_CONCURRENT_TURNS of this process.", registry=registry)
        self.turns_working = Gauge(
            "cspbot_turns_working",
            "Turns working now: in flight and not waiting for Teams or Partner Center (at most MAX_WORKING_TURNS "
            "when a turn is admitted).",
            registry=registry,
        )
        self.turns_working_limit = Gauge(
            "cspbot_turns_working_limit", "MAX_WORKING_TURNS of this process.", registry=registry
        )
        self.partner_center_requests = Counter(
            "cspbot_partner_center_requests",
            "HTTP requests to Partner Center (each retry counts), by operation and outcome (HTTP status, "
            "timeout, connection_error).",
            ["operation", "outcome"],
            registry=registry,
        )
        self.partner_center_seconds = Histogram(
            "cspbot_partner_center_request_seconds",
            "Time of one HTTP request to Partner Center, by operation.",
            ["operation"],
            buckets=PARTNER_CENTER_BUCKETS,
            registry=registry,
        )
        self.partner_center_throttled = Counter(
            "cspbot_partner_center_throttled",
            "Partner Center requests answered 429 (the client waits Retry-After, holding back the customer's "
            "other calls), by operation.",
            ["operation"],
            registry=registry,
        )
        self.jobs_waiting = Gauge(
            "cspbot_jobs_waiting", "Durable jobs due and not yet claimed by a runner.", registry=registry
        )
        self.jobs_running = Gauge("cspbot_jobs_running", "Durable jobs being run now.", registry=registry)
        self.jobs_oldest_waiting = Gauge(
            "cspbot_jobs_oldest_waiting_seconds",
            "How long the oldest due job has waited to be claimed (0 when none waits).",
            registry=registry,
        )
        self.mail_queued = Gauge("cspbot_mail_queued", "E-mails in the outbox waiting for delivery.", registry=registry)
        self.mail_oldest_queued = Gauge(
            "cspbot_mail_oldest_queued_seconds",
            "Age of the oldest e-mail waiting for delivery (0 when none waits).",
            registry=registry,
        )
        self.mail_failed = Gauge(
            "cspbot_mail_failed",
            "E-mails given up on after their retries; each waits for `cspbot mail retry` (the operator has an alert).",
            registry=registry,
        )
        self.open_alerts = Gauge(
            "cspbot_open_alerts", "Open operator alerts (`cspbot alerts`), across replicas.", registry=registry
        )
        self.scrape_errors = Counter(
            "cspbot_metrics_refresh_errors",
            "Scrapes whose queue gauges could not be read from the database (the gauges keep their last value).",
            registry=registry,
        )
        info = Gauge("cspbot_build_info", "Always 1; the version of the running bot.", ["version"], registry=registry)
        info.labels(version=version or "unknown").set(1)

    # --- observations -----------------------------------------------------------------------------

    def turn_done(self, kind: str, status: int, seconds: float) -> None:
        self.turn_seconds.labels(kind=kind).observe(seconds)
        self.turns.labels(kind=kind, status=str(status)).inc()

    def turn_shed(self) -> None:
        self.turns_shed.inc()

    def partner_center_call(self, operation: str, outcome: str, seconds: float) -> None:
        """The Partner Center client's `on_call`: one HTTP attempt."""
        self.partner_center_requests.labels(operation=operation, outcome=outcome).inc()
        self.partner_center_seconds.labels(operation=operation).observe(seconds)
        if outcome == "429":
            self.partner_center_throttled.labels(operation=operation).inc()

    def set_turns(self, in_flight: int, limit: int, working: int, working_limit: int) -> None:
        self.turns_in_flight.set(in_flight)
        self.turns_limit.set(limit)
        self.turns_working.set(working)
        self.turns_working_limit.set(working_limit)

    def set_queues(self, snapshot: Snapshot) -> None:
        self.jobs_waiting.set(snapshot.jobs.waiting)
        self.jobs_running.set(snapshot.jobs.running)
        self.jobs_oldest_waiting.set(snapshot.jobs.oldest_waiting_seconds)
        self.mail_queued.set(snapshot.mail.queued)
        self.mail_oldest_queued.set(snapshot.mail.oldest_queued_seconds)
        self.mail_failed.set(snapshot.mail.failed)
        self.open_alerts.set(snapshot.open_alerts)

    # --- exposition -------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
