"""The Hugging Face Hub client's plumbing, shared by tinygpt.model_repo (`tinygpt push`) and tinygpt.space_repo
(`tinygpt space`): whose token, the repo id and branch checks made before any request, and whatever the client
raises turned into one line that says what failed and what to do.

Everything goes through `huggingface_hub`, so `HF_ENDPOINT` says which Hub (the real one, or a compatible server
such as the tests' local one) and `HF_TOKEN` or `hf auth login` say who is writing.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager

from .common import one_line


class HubError(OSError):
    """A Hub request failed or was refused. The message says what failed and what to do; local files are untouched."""


class NotLoggedInError(HubError):
    """No token, or the Hub refused it."""


class HubUnavailableError(HubError):
    """The Hub could not be reached or answered with a server error (5xx)."""


class InvalidRepoIdError(ValueError):
    """A repo id the Hub would refuse."""


def check_repo_id(repo_id: str, what: str = "repo id") -> None:
    """Refuse what the Hub would refuse, before any request: "user/name" or "name", with letters, digits, - _ ."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise InvalidRepoIdError(
            f"{repo_id!r} is not a valid Hub {what}: use USER/NAME (or NAME for your own namespace) with letters, "
            "digits, '-', '_' and '.', at most 96 characters each, no '--' or '..'"
        ) from None


def check_branch_name(revision: str | None) -> None:
    if revision is None:
        return
    if not revision or revision != revision.strip() or any(c in revision for c in " ~^:?*[\\") \
            or revision.startswith(("/", "-", "refs/")) or revision.endswith(("/", ".lock")) or ".." in revision:
        raise ValueError(f"--revision {revision!r} is not a valid branch name")
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        raise ValueError(f"--revision {revision} is a commit id; give a branch name (it is created if missing)")


def hub_api(token: str | None, endpoint: str | None):
    """An HfApi with a token, or a NotLoggedInError saying how to get one (before any request is made)."""
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise NotLoggedInError(
            "no Hugging Face token found: log in with `hf auth login`, or set HF_TOKEN to a token with write access"
        )
    return HfApi(endpoint=endpoint, token=token)


@contextmanager
def hub_errors(action: str, endpoint: str, local_note: str | None = None):
    """Turn whatever the Hub client raises into one line: what failed, why, and what to do."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    tail = f"; {local_note}" if local_note else ""
    try:
        yield
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        detail = _server_message(err)
        if status == 401:
            raise NotLoggedInError(
                f"{action} failed: {endpoint} refused the token (401 Unauthorized{detail}); log in with "
                f"`hf auth login` or set HF_TOKEN to a valid token with write access{tail}"
            ) from None
        if status == 403:
            raise HubError(f"{action} failed: no write access (403 Forbidden{detail}); use a token with write "
                           f"access to that namespace{tail}") from None
        if status is not None and status >= 500:
            raise HubUnavailableError(f"{action} failed: {endpoint} answered {status}{detail}; the Hub is down or "
                                      f"overloaded, try again later{tail}") from None
        raise HubError(f"{action} failed: HTTP {status}{detail}{tail}") from None
    except OfflineModeIsEnabled:
        raise HubError(f"{action} failed: HF_HUB_OFFLINE is set; unset it to reach the Hub{tail}") from None
    except _network_errors() as err:
        reason = one_line(err)
        raise HubUnavailableError(f"{action} failed: could not reach the Hub at {endpoint} ({reason}); check the "
                                  f"network and HF_ENDPOINT{tail}") from None


def _server_message(err) -> str:
    message = err.response.headers.get("X-Error-Message") if err.response is not None else None
    return f": {message}" if message else ""


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection refused, timeouts...: the HTTP client's own errors (httpx2 in huggingface_hub 2.x, httpx in 1.x)
    and the standard library's."""
    types = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "HTTPError"):
            types.append(module.HTTPError)
    return tuple(types)


def quiet_hub_logging() -> None:
    """For the command line: the client's own warnings ("No files have been modified...") repeat what we print."""
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()
