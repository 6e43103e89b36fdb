"""LiveKit's server APIs as the service offers them (RoomService, AgentDispatch, Egress,
Ingress, SIP): one module per service, each call through the gateway; and the one check of
what LiveKit's workers will fetch, send to or write (`media`, `urlpatterns`)."""
