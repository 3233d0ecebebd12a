"""The load suite: Locust scenarios for vLLM ``/pooling`` with exact, verified, gated measurements.

Data flows one way: scenario → schedule and payload pool → Locust users (send, verify, record) →
records.jsonl → statistics, server view, SLO gate → summary.json, report.html, exit code.
"""
