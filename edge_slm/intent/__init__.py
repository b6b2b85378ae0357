"""Voice intents (CONTRACT §4): tier 1 sentence-template grammar, tier 2 grounded SLM, grounded replies.

Public API (import from the submodules; nothing heavy is imported here):

- `intent.recognizer.IntentRecognizer(intent_settings, engine)` -> `.recognize(text) -> events.Intent`,
  `.phrases_for_asr(max_phrases)`
- `commands.intent.run_intent_cli(settings, text, batch, stdin, stdout) -> int` (`edge-slm intent`)
- `intent.respond.Responder(nav, pois, firing_alerts, vehicle_device)` -> `.respond(intent) -> (text, actions)`
- `intent.respond.canonical_category` (for `nav.poi.load_poi_index`)
- `intent.grammar.Grammar.load(extra_files)` / `default_grammar()`
"""
