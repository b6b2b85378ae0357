"""The daemon's flows, each owning its work and its counters:

- `alerts.AlertFlow`: telemetry -> detect -> alert (outbox + MQTT at once) -> explanation later
- `voice.VoiceFlow`: transcripts (microphone, MQTT) -> intent -> grounded reply + actions; nav facts
"""
