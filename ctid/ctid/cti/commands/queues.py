"""``queue_pause``, ``agent_login`` and ``agent_logout``: the user's main line as a queue member."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ctid.cti.commands.base import AMISender, Request, run_actions
from ctid.directory import Agent


@dataclass(frozen=True)
class QueuesEnv:
    ami_action: AMISender
    agent_of: Callable[[int], Agent | None]
    """The agent whose user has this id, if any."""


def queue_pause(req: Request, env: QueuesEnv) -> None:
    user, msg = req.user, req.msg
    if user.main_line is None:
        return req.fail("no_line", "you have no line in queues")
    headers = {
        "Interface": f"PJSIP/{user.main_line}",
        "Paused": "true" if msg["paused"] else "false",
    }
    if "queue" in msg:
        headers["Queue"] = msg["queue"]
    if msg.get("reason"):
        headers["Reason"] = msg["reason"]
    run_actions(req, env.ami_action, [("QueuePause", headers)], req.ok)


def _agent(req: Request, env: QueuesEnv) -> tuple[Agent, str] | None:
    """The user's agent and the interface it takes calls on, or None after an error reply."""
    agent = env.agent_of(req.user.id)
    if agent is None:
        req.fail("not_an_agent", "you are not an agent")
        return None
    if req.user.main_line is None:
        req.fail("no_line", "you have no line to take calls on")
        return None
    return agent, f"PJSIP/{req.user.main_line}"


def agent_login(req: Request, env: QueuesEnv) -> None:
    found = _agent(req, env)
    if found is None:
        return
    agent, interface = found
    actions = [
        (
            "QueueAdd",
            {
                "Queue": q,
                "Interface": interface,
                "MemberName": f"Agent {agent.number}",
                "StateInterface": interface,
            },
        )
        for q in agent.queues
    ]
    run_actions(req, env.ami_action, actions, lambda: req.ok(queues=list(agent.queues)))


def agent_logout(req: Request, env: QueuesEnv) -> None:
    found = _agent(req, env)
    if found is None:
        return
    agent, interface = found
    actions = [("QueueRemove", {"Queue": q, "Interface": interface}) for q in agent.queues]
    run_actions(req, env.ami_action, actions, lambda: req.ok(queues=list(agent.queues)))
