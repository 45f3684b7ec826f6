"""Chat platforms calling in (ChatOps): one endpoint per platform, authenticated by the platform's own
signature or token (server/chatops/platforms/), not by alertsleuth's credentials.

    POST /api/v1/chat/slack       Events API, slash commands and interactive buttons (one Request URL)
    POST /api/v1/chat/feishu      event subscription and card actions
    GET  /api/v1/chat/wecom       the application callback's URL verification
    POST /api/v1/chat/wecom       its encrypted messages
    POST /api/v1/chat/dingtalk    the robot's outgoing messages

A request that fails its platform's check answers 401 and is counted (`reason="chat_refused"`); a
platform not configured answers 404. Anything verified is acknowledged at once (URL verifications get
their answer) and carried out in the background; the answer is posted in the thread.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from server.chatops.platforms import Raw
from server.deps import ServicesDep
from server.openapi import RETRY_AFTER, answers

router = APIRouter(tags=["chat"])

PlatformName = Annotated[Literal["slack", "feishu", "wecom", "dingtalk"], Path(description="the platform")]


async def _receive(platform: str, request: Request, services: ServicesDep) -> Response:
    chatops = services.chatops
    if chatops is None or platform not in chatops.platforms:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{platform} is not configured (chatops.platforms)")
    raw = Raw(
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=await request.body(),
        now=time.time(),
    )
    content_type, body = await run_in_threadpool(chatops.receive, platform, raw)
    return Response(body, media_type=content_type)


@router.post(
    "/api/v1/chat/{platform}",
    response_class=Response,
    responses={
        200: {"description": "verified: acknowledged, or the URL verification's answer"},
        **answers(
            401,
            404,
            413,
            422,
            503,
            s503={
                "description": "the store could not record the event; nothing was done, send it again "
                "after Retry-After (platforms retry unanswered events on their own)",
                "headers": RETRY_AFTER,
            },
        ),
    },
)
async def chat_in(platform: PlatformName, request: Request, services: ServicesDep) -> Response:
    """A platform's request: verified, acknowledged, carried out in the background."""
    return await _receive(platform, request, services)


@router.get(
    "/api/v1/chat/wecom",
    response_class=Response,
    responses={200: {"description": "the decrypted echostr"}, **answers(401, 404)},
)
async def wecom_verify(request: Request, services: ServicesDep) -> Response:
    """WeCom's URL verification (msg_signature, timestamp, nonce, echostr)."""
    return await _receive("wecom", request, services)
