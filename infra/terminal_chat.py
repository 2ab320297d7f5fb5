"""`kinfer chat`: a terminal conversation, streamed token by token, with a spinner
until the first token arrives. History lives in the session (Redis)."""

from __future__ import annotations

import itertools
import sys

from rich.console import Console

from kinfer.producers import ChatMessage, Client, ClientConfig, RequestFailed
from kinfer.schemas import InferenceResult, SamplingParams, TokenChunk


def run_chat(config: ClientConfig, console: Console, session_id: str, sampling: SamplingParams) -> None:
    console.print(f"[dim]session {session_id} — /exit or Ctrl-D to leave[/dim]")
    with Client(config) as client:
        while True:
            try:
                line = console.input("[bold]you>[/bold] ") if sys.stdin.isatty() else input()
            except EOFError:
                break
            if line.strip() in ("/exit", "/quit"):
                break
            if line.strip():
                answer(client, console, session_id, line, sampling)


def answer(client: Client, console: Console, session_id: str, line: str, sampling: SamplingParams) -> None:
    """Stream one answer; the turn is stored in the session once complete."""
    items = client.chat_stream([ChatMessage("user", line)], session_id=session_id, sampling=sampling)
    try:
        with console.status("thinking…", spinner="dots"):
            first = next(items)
        for item in itertools.chain([first], items):
            if isinstance(item, TokenChunk):
                console.print(item.text, end="", markup=False, highlight=False)
            elif isinstance(item, InferenceResult):
                console.print()
    except RequestFailed as exc:
        console.print(f"[red]error [{exc.code.value}]: {exc.message}[/red]")
