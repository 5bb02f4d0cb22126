"""Pipeline step: a mail to a resource's approve or decline address decides its approval.

``room+approve-<token>@domain`` and ``room+decline-<token>@domain`` deliver to the resource
(``directory.resolve`` strips the detail). Such a mail is never a meeting request and gets
no out-of-office reply: this step files it itself, ending the pipeline. When the token is
genuine, this resource's, pending and in time, and a delegate sent it, the approval is
decided (``services.approvals``) and the mail filed with the processed requests; otherwise
nothing changes, nobody is answered (a forger learns nothing), and the mail goes to the
Inbox with the reason in the log.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from mr_engine.core import approval_tokens as tokens
from mr_engine.services import approvals
from mr_engine.services.meeting_requests import queue_replies
from mr_engine.store.approvals import ApprovalError
from mr_engine.store.stores import PROCESSED

from .context import Delivery, Outcome

log = logging.getLogger(__name__)


def _answer(d: Delivery, ask: tokens.Ask) -> approvals.MailAnswer:
    try:
        # A savepoint of its own: a failure undoes the decision, not the delivery.
        with d.session.begin_nested():
            answer = approvals.answer_mail(d.session, d.mailbox, ask, d.envelope.message,
                                           d.envelope.sender, d.settings, d.now)
            if answer.decided is not None:
                queue_replies(d.session, answer.decided.replies, d.now)
            return answer
    except SQLAlchemyError:
        raise  # a store fault: 451, the MTA retries
    except ApprovalError as exc:
        return approvals.MailAnswer(str(exc))
    except Exception:
        log.exception("%s: approval mail processing failed", d.row.name)
        return approvals.MailAnswer("processing failed")


def decide_by_mail(d: Delivery) -> Outcome | None:
    ask = tokens.ask_of(d.recipient)
    if ask is None:
        return None
    answer = _answer(d, ask)
    if answer.decided is None:
        log.warning("%s: %s mail from %r changes nothing: %s", d.row.name, ask.action,
                    d.envelope.sender, answer.refused)
        d.notes.append(f"{ask.action} mail refused: {answer.refused}")
    else:
        d.queued += len(answer.decided.replies)
        d.notes.append(f"approval {answer.decided.approval_id} {answer.decided.outcome} by mail")
        d.folder = PROCESSED
    return d.mail.file(d)
