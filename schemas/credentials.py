"""Which fields of LiveKit's messages are credentials, and the copy of a message a log line
may show.

`SECRET_FIELDS` are write-only: `schemas.bridge` accepts them on input, sends them to
LiveKit and never renders them (`to_json`), so they are never in a response, a stored
idempotent replay or an event payload; `redacted(message)` clears them for a log line.
`STREAM_KEY_FIELDS` are shown only to some callers: `to_json(..., withheld=...)` leaves them
out for the others.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

#: Credentials inside LiveKit's messages, by full field name: write-only (see the module doc).
#: Sources: livekit/protocol `livekit_egress.proto` (upload backends, proxy),
#: `livekit_sip.proto` (trunk and outbound passwords, dispatch rule PINs: a caller dialling
#: in proves it knows the PIN), `livekit_models.proto` (TURN),
#: `livekit_webhook.proto`, `livekit_rtc.proto` (ICE), `livekit_agent*.proto`,
#: `livekit_connector_whatsapp.proto`.
SECRET_FIELDS: frozenset[str] = frozenset(
    {
        "livekit.S3Upload.secret",
        "livekit.S3Upload.session_token",
        "livekit.GCPUpload.credentials",
        "livekit.AzureBlobUpload.account_key",
        "livekit.AliOSSUpload.secret",
        "livekit.ProxyConfig.password",
        "livekit.Room.turn_password",
        "livekit.ICEServer.credential",
        "livekit.WebhookConfig.signing_key",
        "livekit.SIPTrunkInfo.inbound_password",
        "livekit.SIPTrunkInfo.outbound_password",
        "livekit.CreateSIPTrunkRequest.inbound_password",
        "livekit.CreateSIPTrunkRequest.outbound_password",
        "livekit.SIPInboundTrunkInfo.auth_password",
        "livekit.SIPOutboundTrunkInfo.auth_password",
        "livekit.SIPInboundTrunkUpdate.auth_password",
        "livekit.SIPOutboundTrunkUpdate.auth_password",
        "livekit.SIPOutboundConfig.auth_password",
        "livekit.SIPDispatchRuleDirect.pin",
        "livekit.SIPDispatchRuleIndividual.pin",
        "livekit.SIPDispatchRuleCallee.pin",
        "livekit.DialWhatsAppCallRequest.whatsapp_api_key",
        "livekit.AcceptWhatsAppCallRequest.whatsapp_api_key",
        "livekit.DisconnectWhatsAppCallRequest.whatsapp_api_key",
        "livekit.AgentInfo.secrets",
        "livekit.ListAgentSecretsResponse.secrets",
    }
)

#: Credentials shown only to callers that may write ingress (contract: Conventions): the
#: key an encoder pushes a stream with (`livekit_ingress.proto`). Readable by such callers,
#: so not write-only: `to_json(..., withheld=STREAM_KEY_FIELDS)` leaves them out for the
#: others (`app.server_apis.ingress.withheld_from` decides).
STREAM_KEY_FIELDS: frozenset[str] = frozenset({"livekit.IngressInfo.stream_key"})


def redacted(message: M) -> M:
    """A copy of `message` with every `SECRET_FIELDS` member cleared, at any depth: what a
    log line may show of a LiveKit message."""
    copy = type(message)()
    copy.CopyFrom(message)
    _clear_secrets(copy)
    return copy


def _clear_secrets(message: Message) -> None:
    for field, value in message.ListFields():
        if field.full_name in SECRET_FIELDS:
            message.ClearField(field.name)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for item in value if field.is_repeated else [value]:
                if isinstance(item, Message):
                    _clear_secrets(item)
        elif field.message_type is not None:  # a map: clear its message values
            for item in value.values():
                if isinstance(item, Message):
                    _clear_secrets(item)
