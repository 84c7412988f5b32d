"""A test-only task: a three-step survey (text prompt, card prompt, summary).

It exercises what every real task does — a text prompt, a card read through `CARD_PROMPT`, state
kept between turns in the database — without depending on any feature's services.
"""

from __future__ import annotations

from typing import Any

from microsoft_agents.hosting.core import MessageFactory
from microsoft_agents.hosting.dialogs import (
    DialogTurnResult,
    PromptOptions,
    TextPrompt,
    WaterfallStepContext,
)

from dialogs.base import CARD_PROMPT, TaskDialog
from dialogs.catalogue import Task
from services.container import Services
from services.roles import Permission

SURVEY_DIALOG_ID = "survey_dialog"
SURVEY_VERB = "survey_colour"
NAME_QUESTION = "What is your name?"
SURVEY_TITLE = "the survey"
NAME_PROMPT = "survey_name_prompt"


def colour_card(name: str) -> dict[str, Any]:
    """Adaptive Card 1.5 asking for a colour; its submit carries `verb` plus the `colour` input."""
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": f"Hello {name}, which colour do you like?", "wrap": True},
            {"type": "Input.Text", "id": "colour", "label": "Colour", "isRequired": True},
        ],
        "actions": [{"type": "Action.Submit", "title": "Send", "data": {"verb": SURVEY_VERB}}],
    }


class SurveyDialog(TaskDialog):
    title = SURVEY_TITLE

    def __init__(self) -> None:
        super().__init__(SURVEY_DIALOG_ID, [self.ask_name_step, self.ask_colour_step, self.summary_step])
        self.add_dialog(TextPrompt(NAME_PROMPT))

    async def ask_name_step(self, step_context: WaterfallStepContext) -> DialogTurnResult:
        return await step_context.prompt(NAME_PROMPT, PromptOptions(prompt=MessageFactory.text(NAME_QUESTION)))

    async def ask_colour_step(self, step_context: WaterfallStepContext) -> DialogTurnResult:
        name = str(step_context.result or "").strip()
        step_context.values["name"] = name
        return await step_context.prompt(CARD_PROMPT, self.prompt_card(colour_card(name)))

    async def summary_step(self, step_context: WaterfallStepContext) -> DialogTurnResult:
        submitted = step_context.result if isinstance(step_context.result, dict) else {}
        colour = str(submitted.get("colour", "")).strip()
        name = step_context.values.get("name", "")
        await step_context.context.send_activity(f"Thanks {name}, you like {colour}.")
        return await step_context.end_dialog()


def survey_tasks(_services: Services) -> list[Task]:
    return [
        Task(
            command="survey",
            title=SURVEY_TITLE,
            description="A three-step survey (tests only)",
            dialog=SurveyDialog(),
            permission=Permission.READ_SUBSCRIPTIONS,
        )
    ]
