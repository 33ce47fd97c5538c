#!/bin/sh
# Pool limits of the Dagster instance (kept in its storage, not in dagster.yaml). Run once per
# instance with DAGSTER_HOME pointing at the production dagster.yaml; re-run to change a limit.
#   llm           parallel model calls (ai_proposal steps); match the provider's rate limit
#   chroma_writer steps that write Chroma (knowledge, resolution_embedding, resolution_index):
#                 1 for a persistent folder; a Chroma server takes more, but 1 keeps upserts ordered
set -eu
dagster instance concurrency set llm "${LLM_POOL_LIMIT:-8}"
dagster instance concurrency set chroma_writer "${CHROMA_WRITER_POOL_LIMIT:-1}"
dagster instance concurrency get --all 2>/dev/null || dagster instance concurrency get llm
