"""Every pair of statuses, for every role: allowed moves and clear refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.auth.roles import Role
from callcenter.tickets.lifecycle import (
    DONE,
    IN_PROCESS,
    REJECTED,
    STATUSES,
    TRANSITIONS,
    WAITING,
    IllegalTransition,
    check_transition,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

EXPECTED = {
    (WAITING, IN_PROCESS): "start",
    (WAITING, DONE): "resolve",
    (WAITING, REJECTED): "reject",
    (IN_PROCESS, DONE): "resolve",
    (IN_PROCESS, REJECTED): "reject",
    (IN_PROCESS, WAITING): "release",
    (DONE, WAITING): "reopen",
    (REJECTED, WAITING): "reopen",
}


def test_the_table_is_what_the_command_center_agreed() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_every_pair_for_a_supervisor(current: str, target: str) -> None:
    name = EXPECTED.get((current, target))
    if name is None:
        with pytest.raises(IllegalTransition, match=f"cannot go from '{current}' to '{target}'; allowed: "):
            check_transition(current, target, Role.SUPERVISOR, reason="x", now=NOW)
    else:
        move = check_transition(current, target, Role.SUPERVISOR, reason="because", now=NOW)
        assert (move.name, move.from_status, move.to_status) == (name, current, target)


def test_reject_needs_a_reason() -> None:
    for current in (WAITING, IN_PROCESS):
        with pytest.raises(IllegalTransition, match="needs a reason"):
            check_transition(current, REJECTED, Role.AGENT, reason="   ")
    assert check_transition(WAITING, REJECTED, Role.AGENT, reason="bukan wewenang").name == "reject"


def test_opd_operator_claims_before_closing() -> None:
    with pytest.raises(IllegalTransition, match="claims a ticket"):
        check_transition(WAITING, DONE, Role.OPD_OPERATOR)
    assert check_transition(WAITING, IN_PROCESS, Role.OPD_OPERATOR).name == "start"
    assert check_transition(IN_PROCESS, DONE, Role.OPD_OPERATOR).name == "resolve"
    # The command center may settle a ticket directly.
    assert check_transition(WAITING, DONE, Role.AGENT).name == "resolve"


@pytest.mark.parametrize("role", [Role.AGENT, Role.OPD_OPERATOR, Role.AUDITOR, Role.INTEGRATION])
def test_only_supervisors_and_admins_reopen(role: Role) -> None:
    with pytest.raises(IllegalTransition, match="only a supervisor may reopen"):
        check_transition(DONE, WAITING, role, resolved_at=NOW, now=NOW)


def test_reopen_window() -> None:
    inside = check_transition(DONE, WAITING, Role.ADMIN, resolved_at=NOW - timedelta(days=29), now=NOW)
    assert inside.name == "reopen"
    with pytest.raises(IllegalTransition, match="reopen window of 30 days has passed"):
        check_transition(REJECTED, WAITING, Role.SUPERVISOR, resolved_at=NOW - timedelta(days=31), now=NOW)


def test_unknown_status() -> None:
    with pytest.raises(IllegalTransition, match="unknown status 'closed'"):
        check_transition(WAITING, "closed", Role.ADMIN)
