"""Build the sandbox world and the seed precedent file from one seeded random generator.

Outputs (all byte-for-byte deterministic: no wall clock, one `random.Random(SEED)`):

- dispute_platform/data/sandbox_world.json: a fictional Brightwave Software, Inc. (plans,
  ~300 accounts with 12-18 months of invoices, charges, refunds and chargebacks, status-page
  incidents, ~70 open CRM cases and ~40 sample dispute events). Schema: docs/sandbox.md.
- dispute_platform/data/historical_resolutions.jsonl: ~300 past resolutions, each decided by
  the real rules (`apply_policy_rules(derive_facts(enrich(...)))` then `apply_guardrails`) on a
  synthetic context, so the precedent store never contradicts the policies.
- the sample-event table in docs/sandbox.md, between the two marker comments.

The open cases are not random: each is a *scenario* that puts one account into the exact state a
policy branch turns on (an outage of exactly 4 h, a cancellation on day 15 of an annual plan ...)
and states what the rules must decide. The build fails if the rules decide anything else, so the
documentation table can never drift from the code.

Usage: python scripts/build_sandbox_world.py (or python -m dispute_platform.sandbox) [--check] [--table] [--stats]
  (no flag)  write the three outputs and print statistics
  --check    exit 1 if a committed output differs from what would be generated
  --table    print the sample-event table (markdown) and exit
  --stats    print statistics and exit
"""
