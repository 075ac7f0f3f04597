"""What the demo's API says when Gradio itself cannot take a request: a message that names the input.

Every request, from the page or from an API client, goes through `Blocks.preprocess_data` before a handler of
app.py runs: Gradio counts the inputs, moves uploaded files into its cache and runs each component's `preprocess`.
What fails there (a word where a number belongs, null, NaN, too few inputs, a path that was never uploaded) left
Gradio as a plain exception, which its queue reports as `{"error": null}` unless the whole server runs with
`show_error=True`, and that would also send the text of any internal error (server paths included) to every
client. Gradio's `validator=` runs after that same preprocessing, so it never sees those requests, and it answers
at queue/join with an HTTP error that gradio_client only reads for validation results.

So `CheckedBlocks`, a `gr.Blocks` for app.py, checks every request before Gradio preprocesses it: the number of
inputs (extra inputs, which Gradio ignored, are refused too), and each value against what its component declares
(its API schema, a slider's range, a radio's choices), raising a `gr.Error` that names the endpoint's parameter and
what it expects, e.g. "max_new_tokens must be a whole number from 1 to 1000, got 'many'". A `gr.api` endpoint
(/train) gets the count checked and its values as sent: Gradio does not preprocess them, and its handler names
what is wrong in its own words. Whatever Gradio still refuses is named by the input it was reading, and an
unexpected failure anywhere in a request is an error that says so (its traceback goes to the server log) instead
of `null`. Every endpoint gets this, whatever app.py exposes, from one place.

Needs only gradio, like app.py (a Space runs it from the `tinygpt` folder beside app.py).
"""

from __future__ import annotations

import json
import math
from typing import Any

import gradio as gr
import gradio.blocks
from gradio.exceptions import AppError, ComponentProcessingError, InvalidPathError

# The shape gradio_client's `handle_file(path)` sends for a file, after uploading it.
FILE_SHAPE = '{"path": ..., "meta": {"_type": "gradio.FileData"}}'


class RequestError(gr.Error):
    """A request the demo's API refuses before any handler runs: the client gets the message, the log no traceback."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)

    def __str__(self) -> str:  # gr.Error's is repr(message); a validator's refusal at queue/join answers str(error)
        return self.message


class CheckedBlocks(gr.Blocks):
    """`gr.Blocks` whose endpoints refuse malformed requests in words (see the module's docstring)."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        if not block_fn.batch:  # a batch function's inputs are lists of values (app.py has none)
            check_inputs(block_fn, inputs)
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except AppError:
            raise
        except Exception as err:  # what Gradio refuses beyond our checks, named by the input it was reading
            raise RequestError(describe_unreadable(block_fn, inputs, err)) from None

    async def process_api(self, block_fn, inputs, *args, **kwargs):
        try:
            return await super().process_api(block_fn, inputs, *args, **kwargs)
        except AppError:
            raise
        except Exception as err:  # a fault of the server's own: the client hears that, the log gets the traceback
            fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
            raise gr.Error(f"{endpoint(fn)} failed on the server ({type(err).__name__}); this request was not "
                           "completed, and the server's log has the details") from err


# ------------------------------------------------------------------------------------------ what a request holds


def endpoint(block_fn) -> str:
    return f"/{block_fn.api_name}" if isinstance(block_fn.api_name, str) else "this event"


def parameter_names(block_fn) -> list[str]:
    """The name of each input as the endpoint's API shows it: the handler's parameter, else the component's
    label, else its position."""
    names = list(getattr(block_fn, "input_parameter_names", None) or [])
    names += [None] * (len(block_fn.inputs) - len(names))
    return [name or getattr(block, "label", None) or f"input {i + 1}"
            for i, (name, block) in enumerate(zip(names, block_fn.inputs))]


def check_inputs(block_fn, inputs: list) -> None:
    """Raise a RequestError naming the first input that the endpoint's components cannot take."""
    names = parameter_names(block_fn)
    if not isinstance(inputs, list) or len(inputs) != len(names):
        raise RequestError(describe_count(block_fn, names, inputs))
    if not block_fn.preprocess:  # a gr.api endpoint: its handler gets the JSON as sent and checks it in its own words
        return
    for i, (name, block, value) in enumerate(zip(names, block_fn.inputs, inputs)):
        if getattr(block, "stateful", False) or i in (getattr(block_fn, "component_prop_inputs", None) or []):
            continue  # a gr.State's value comes from the session, not the request
        problem = value_problem(block, value)
        if problem:
            raise RequestError(f"{name} {problem}")


def describe_count(block_fn, names: list[str], inputs) -> str:
    got = len(inputs) if isinstance(inputs, list) else 0
    if not names:
        return f"{endpoint(block_fn)} takes no inputs, got {got}: send an empty list"
    wanted = f"{endpoint(block_fn)} takes {len(names)} input{'s' if len(names) > 1 else ''} ({', '.join(names)})"
    if got > len(names):
        return f"{wanted}, got {got}: leave out the last {got - len(names)}"
    missing = [f"{name} ({expectation(block)})" for name, block in zip(names[got:], block_fn.inputs[got:])]
    return (f"{wanted}, got {got}: missing {', '.join(missing)}. Send all of them, in this order "
            "(gradio_client fills in the defaults of inputs given by keyword)")


def describe_unreadable(block_fn, inputs: list, err: Exception) -> str:
    """One line for an input that passed our checks but that Gradio could not preprocess."""
    index = _input_being_read(err)
    names = parameter_names(block_fn)
    name = names[index] if index is not None and index < len(names) else f"an input of {endpoint(block_fn)}"
    cause = err.__cause__ if isinstance(err, ComponentProcessingError) and err.__cause__ else err
    if isinstance(cause, InvalidPathError) and "not uploaded" in str(cause):
        path = inputs[index].get("path") if index is not None and isinstance(inputs[index], dict) else None
        return (f"{name} names a file that was not uploaded to this server{f' ({path})' if path else ''}: upload "
                "it first (gradio_client's handle_file(path) does)")
    return f"{name} could not be read: {_first_line(cause)}"


def _input_being_read(err: BaseException) -> int | None:
    """The index of the input Gradio's own `preprocess_data` loop was on when `err` was raised (its local `i`)."""
    tb, index = err.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "preprocess_data" and frame.f_code.co_filename == gradio.blocks.__file__:
            index = frame.f_locals.get("i")
        tb = tb.tb_next
    return index if isinstance(index, int) else None


# ------------------------------------------------------------------------------------ what a component expects


def _schema(block) -> dict:
    try:
        schema = dict(block.api_info())
    except Exception:  # a component without an API schema: nothing to check it against
        return {}
    if getattr(block, "allow_custom_value", False):  # a Dropdown that takes any text (e.g. a custom model size)
        schema.pop("enum", None)
    return schema


def _kind(schema: dict) -> str | None:
    if "enum" in schema:
        return "choice"
    if schema.get("title") == "FileData" or "path" in schema.get("properties", {}):
        return "file"
    return schema.get("type") if isinstance(schema.get("type"), str) else None


def _number(x) -> str:
    """1, 0.05, 4294967295: no '1.0', no '4.29e+09'."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _range(block) -> str:
    low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)
    if low is not None and high is not None:
        return f" from {_number(low)} to {_number(high)}"
    if low is not None:
        return f" of at least {_number(low)}"
    if high is not None:
        return f" of at most {_number(high)}"
    return ""


def expectation(block) -> str:
    """What the component takes, in words: 'a whole number from 1 to 1000', "one of 'paste', 'upload'"."""
    schema = _schema(block)
    kind = _kind(schema)
    if kind == "choice":
        return "one of " + ", ".join(_shown(c) for c in schema["enum"])
    if kind == "integer":
        return "a whole number" + _range(block)
    if kind == "number":
        return "a number" + _range(block)
    if kind == "string":
        return "text (a string)"
    if kind == "boolean":
        return "true or false"
    if kind == "file":
        return f"a file uploaded to this server, as {FILE_SHAPE} (what gradio_client's handle_file(path) sends)"
    if kind == "array":
        return "a list"
    return "a value"


def value_problem(block, value) -> str | None:
    """None if the component can take `value`, else 'must be ..., got ...' (without the input's name)."""
    kind = _kind(_schema(block))
    expected = expectation(block)
    if kind is None:
        return None
    if value is None:  # no value: Gradio hands None to the handler for text and files, sliders cannot take it
        return None if kind in ("string", "file") else f"must be {expected}, got null"
    if kind == "choice":
        return None if value in _schema(block)["enum"] else f"must be {expected}, got {_shown(value)}"
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be {expected}, got {_shown(value)}"
        if kind == "integer" and not float(value).is_integer():
            return f"must be {expected}, got {_shown(value)}"
        low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)
        if low is not None and value < low:  # Gradio's own words after ours: "less than minimum value 0"
            return f"must be {expected}: {_number(value)} is less than the minimum value {_number(low)}"
        if high is not None and value > high:
            return f"must be {expected}: {_number(value)} is greater than the maximum value {_number(high)}"
        return None
    if kind == "string":
        return None if isinstance(value, str) else f"must be {expected}, got {_shown(value)}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"must be {expected}, got {_shown(value)}"
    if kind == "file":
        meta = value.get("meta") if isinstance(value, dict) else None
        if (not isinstance(value, dict) or not isinstance(value.get("path"), str) or not isinstance(meta, dict)
                or meta.get("_type") != "gradio.FileData"):
            return f"must be {expected}, got {_shown(value)}"
        return None
    if kind == "array":
        return None if isinstance(value, list) else f"must be {expected}, got {_shown(value)}"
    return None


def _shown(value: Any, limit: int = 60) -> str:
    """A value as the client wrote it in JSON: "many", null, NaN, true."""
    if isinstance(value, str):
        return "'" + value[:limit] + ("…'" if len(value) > limit else "'")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
