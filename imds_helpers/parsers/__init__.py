"""Pure parsers for command output and system files, one module per format.

Every parser takes text and returns a frozen result whose ``kind`` says how the input was
classified (for example ``"routes"``, ``"empty"``, ``"unrecognised"``). Parsers never raise
on any input: support engineers paste truncated, localised and prompt-decorated output, and
a parser that crashes hides the evidence it was given. Each is tested on real captures
(``tests/fixtures/real/command-output``) and fuzzed with arbitrary text.
"""
