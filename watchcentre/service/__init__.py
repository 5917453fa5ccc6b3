"""The service layer: it speaks only to ports (Store, Publisher, Metrics, Clock, DeadLetters), so the
same code runs against SQLite or PostgreSQL, and any broker adapter. One job per class, each built
in watchcentre/bootstrap.py and nowhere else:

* `Intake` (intake.py): one delivery to the end — time limit, ack or retry, poison counting, receipts;
* `Pipeline` (pipeline.py): decode → check → classify → route, deduplicated; case actions;
* `OperatorCommands` (operator.py): manual routing, dead-letter re-injection;
* `Outbox` (outbox.py): the copies, the audit events, the group commit, dead letters, the live feed;
* `EnvelopeChecks` (checks.py): what the envelope model cannot check alone;
* `Submissions` (submit.py): a message a post or a unit writes on its screen, into the pipeline.

Case lifecycle actions are the CaseDesk's (watchcentre/cases.py).
"""

from watchcentre.service.checks import EnvelopeChecks
from watchcentre.service.intake import HandlerTimeout, Intake
from watchcentre.service.operator import REINJECTED_HEADER, OperatorCommands
from watchcentre.service.outbox import Outbox
from watchcentre.service.pipeline import Pipeline
from watchcentre.service.settings import ServiceSettings
from watchcentre.service.submit import Submissions

__all__ = [
    "REINJECTED_HEADER",
    "EnvelopeChecks",
    "HandlerTimeout",
    "Intake",
    "OperatorCommands",
    "Outbox",
    "Pipeline",
    "ServiceSettings",
    "Submissions",
]
