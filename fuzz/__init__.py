"""Fuzzing harnesses: atheris (libFuzzer) over every deserializer and the HTTP API's request parsing.

    scripts/fuzz                        # every target, 10 s each
    scripts/fuzz block http --seconds 60

The targets themselves are in ``fuzz/targets.py``; the hypothesis tests of
tests/hostile/test_fuzz.py run the same targets inside the test suite.
"""
