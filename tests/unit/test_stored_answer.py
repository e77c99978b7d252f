"""The command API's stored answer uses a position only through its token.

The command path vouches for that (`respond_by_token`), so a keyed append renders the answer
once with a stand-in token that its statement swaps for the real one: an answer using the
position any other way would be stored wrong. This holds the answer to it.
"""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from command_api.dispatch import stored_answer
from eventstore.positions import Position
from eventstore.repository import Outcome


@pytest.mark.parametrize("created", [True, False])
def test_the_stored_answer_differs_between_positions_only_by_their_tokens(created: bool) -> None:
    stream = uuid4()
    first, second = Position(123456789, 987654321), Position(555, 42)
    one = json.dumps(stored_answer(Outcome(stream, 3, first, created)))
    other = json.dumps(stored_answer(Outcome(stream, 3, second, created)))
    assert first.token in one
    assert one.replace(first.token, second.token) == other
