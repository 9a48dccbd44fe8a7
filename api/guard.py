"""The server interceptor every RPC passes: authenticate, authorize, map errors, audit.

grpc.aio interceptors see only the method name and metadata, not the peer's certificate,
so ``Guard`` wraps each method handler instead: the wrapper runs inside the call, where
``context.auth_context()`` holds the verified certificate. The same wrapper serves unary
and streaming methods, so no RPC (ours, health or reflection) bypasses the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from absl import logging
from google.protobuf import message as protobuf_message

from api import errors, identity, policy
from api.identity import Identity, peer_identity
from worker.errors import InvalidSpec

Context = Any  # grpc.aio.ServicerContext; the stubs' generics add nothing here.
Handler = Any  # grpc.RpcMethodHandler; the stubs type its behaviors as synchronous.


class _Undecodable:
    """Stands in for a request that failed to parse, so the guard can answer it."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Record:
    """What the audit line reports about one call; filled in as the call proceeds."""

    __slots__ = ("caller", "code", "job_id", "peer")

    def __init__(self, job_id: str, peer: str) -> None:
        self.peer = peer
        self.caller: Identity | None = None
        self.code = grpc.StatusCode.OK
        self.job_id = job_id


def _loggable(text: str) -> str:
    # Job ids arrive from clients unchecked: escape them so a crafted id cannot forge or
    # split audit lines (log injection), and cap their length.
    escaped = text.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")
    return escaped if len(escaped) <= 64 else escaped[:64] + "..."


async def _abort(record: _Record, context: Context, code: grpc.StatusCode, text: str) -> NoReturn:
    record.code = code
    await context.abort(code, text)
    raise AssertionError("context.abort returned")  # It always raises; this satisfies NoReturn.


@contextlib.asynccontextmanager
async def _guarded(method: str, context: Context, request: object) -> AsyncIterator[_Record]:
    # Read the peer now: context.peer() on a call the client has already cancelled
    # crashed the process (SIGSEGV) with grpcio 1.85.3.
    record = _Record(job_id=str(getattr(request, "job_id", "")), peer=context.peer())
    try:
        record.caller = peer_identity(context)
        if record.caller is None:
            await _abort(
                record, context, grpc.StatusCode.UNAUTHENTICATED, "no valid client certificate"
            )
        if policy.reach(method, record.caller) is None:
            role = record.caller.role.value if record.caller.role else "none"
            await _abort(
                record,
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {role} may not call {method}",
            )
        if isinstance(request, _Undecodable):
            raise InvalidSpec("request", request.reason)
        identity.authenticated(record.caller)
        yield record
    except grpc.aio.AbortError:
        if record.code is grpc.StatusCode.OK:  # A wrapped servicer (health) aborted itself.
            record.code = context.code() or grpc.StatusCode.UNKNOWN
        raise
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away or the server is stopping; a stream abandoned by grpc is
        # closed with GeneratorExit, which is no Exception and would otherwise log "OK".
        record.code = grpc.StatusCode.CANCELLED
        raise
    except Exception as error:
        status = errors.status_for(error)
        if status.is_bug:
            logging.exception("bug while serving %s", method)
        await _abort(record, context, status.code, status.message)
    finally:
        caller = record.caller
        logging.info(
            "audit peer=%s user=%s role=%s rpc=%s job=%s code=%s",
            record.peer,
            _loggable(caller.user) if caller else "-",
            caller.role.value if caller and caller.role else "-",
            method,
            _loggable(record.job_id) if record.job_id else "-",
            record.code.name,
        )


def _tolerant(deserializer: Callable[[bytes], object] | None) -> Callable[[bytes], object]:
    # grpc answers an unparsable request with INTERNAL, which would read as a daemon bug;
    # deferring the error lets the guard answer INVALID_ARGUMENT (and audit it).
    def deserialize(data: bytes) -> object:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except (protobuf_message.DecodeError, ValueError, UnicodeDecodeError) as err:
            return _Undecodable(f"not a valid message: {err}")

    return deserialize


def _unary_response(method: str, behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: object, context: Context) -> Any:
        async with _guarded(method, context, request) as record:
            response = behavior(request, context)
            if inspect.isawaitable(response):
                response = await response
            job = getattr(response, "job", None)
            if not record.job_id and job is not None:
                record.job_id = job.job_id  # StartJob: the id exists only now.
            return response
        raise AssertionError("unreachable: the guard re-raises or aborts")

    return guarded


def _stream_response(
    method: str, behavior: Callable[..., Any]
) -> Callable[..., AsyncIterator[Any]]:
    async def guarded(request: object, context: Context) -> AsyncIterator[Any]:
        async with _guarded(method, context, request):
            responses = behavior(request, context)
            if inspect.isawaitable(responses):  # Writes through context.write (health Watch).
                await responses
                return
            # Close the servicer's generator ourselves: if grpc abandons this one (a client
            # gone while flow control held the stream), the reader's fd must not wait for
            # the garbage collector's unowned aclose() task.
            try:
                async for response in responses:
                    yield response
            finally:
                if inspect.isasyncgen(responses):
                    await responses.aclose()

    return guarded


def guard_handler(method: str, handler: Handler) -> Handler:
    """Returns ``handler`` with every behavior wrapped by the guard.

    Args:
        method: The full method name the handler serves.
        handler: The servicer's handler, as returned by the interceptor continuation.
    """
    serialize = handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary_response(method, handler.unary_unary),
            _tolerant(handler.request_deserializer),
            serialize,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _stream_response(method, handler.unary_stream),
            _tolerant(handler.request_deserializer),
            serialize,
        )
    # Client-streaming requests (only reflection here) are parsed by grpc itself.
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _unary_response(method, handler.stream_unary),
            handler.request_deserializer,
            serialize,
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_response(method, handler.stream_stream),
        handler.request_deserializer,
        serialize,
    )


class Guard(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies api/policy.py and api/errors.py to every RPC and writes the audit log."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wraps the handler of the called method; unknown methods stay UNIMPLEMENTED."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return guard_handler(handler_call_details.method, handler)
