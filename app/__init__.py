"""The control plane for LiveKit: tokens under policy, REST over LiveKit's APIs, webhooks."""
