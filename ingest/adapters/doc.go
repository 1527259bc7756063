// Package adapters turns a provider's own usage report into one canonical
// usage event (schemas.Event), so that the provider-specific token
// conventions are normalized exactly once, at the front door, and every later
// stage sees input_tokens that include cache reads, cache writes, tool and
// audio input, and output_tokens that include reasoning, predictions and
// audio output.
//
// Data enters as an Envelope, which a gateway posts to ingest at
// POST /v1/adapters/{name}; Normalize returns a validated event (or an error
// naming the offending fields) and ingest produces it like any event posted
// to /v1/events. Nothing here does I/O.
//
// # Envelope
//
// One JSON object per request made to a provider:
//
//	{
//	  "event_id":      "01J…",            required (or, for litellm, the payload's id)
//	  "time":          "2026-01-02T15:04:05Z", required (or, for litellm, startTime)
//	  "source":        "gateway-eu-1",    required
//	  "labels":        {"team": "search"},
//	  "api_key_id":    "sha256:…",        or label "api_key" with the raw key; any other form is hashed
//	  "provider":      "azure.ai.openai", overrides the adapter's provider
//	  "request_model": "gpt-4o",          used when the response names no model
//	  "operation":     "chat",
//	  "latency_ms":    812,
//	  "status":        "ok",              ok | error | cancelled | partial
//	  "error_type":    "rate_limited",
//	  "service_tier":  "flex",            used when the response names none
//	  "batch":         true,              the request ran in a batch job
//	  "streaming":     false,
//	  "response":      { … }              the provider's response JSON, or just its usage object
//	}
//
// Unknown envelope fields are rejected, and so are, anywhere in the
// envelope, a key repeated in one object, two keys that name one field of
// the envelope or of the provider's response by differing only in case,
// and text that is not valid UTF-8 (see schemas.CheckJSON). "response" may be the whole response
// body (its content is ignored; only usage, model and tier are read) or the
// usage object alone: {"usage": …} for openai, anthropic and bedrock,
// {"usageMetadata": …} for gemini; the litellm adapter takes the
// StandardLoggingPayload (or a LiteLLM_SpendLogs row) itself.
//
// # Adapters
//
//   - openai: Chat Completions usage (prompt_tokens, completion_tokens and
//     their details) or Responses API usage (input_tokens, output_tokens and
//     their details), told apart by the fields present. Counts are already
//     inclusive.
//   - anthropic: Messages usage; input_tokens excludes the cache, so
//     input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens.
//     cache_creation gives the 5m/1h split of cache writes.
//   - gemini: usageMetadata; input = promptTokenCount + toolUsePromptTokenCount,
//     output = candidatesTokenCount + thoughtsTokenCount. Absent counts are 0
//     (proto3 JSON omits zeros).
//   - bedrock: Converse usage; input = inputTokens + cacheReadInputTokens +
//     cacheWriteInputTokens; cacheDetails gives the 5m/1h split. Converse
//     responses carry no model, so request_model is required.
//   - litellm: a StandardLoggingPayload as sent by LiteLLM callbacks;
//     prompt_tokens is taken as inclusive of cache tokens, response_cost
//     becomes provider_cost_usd, copied digit for digit.
//
// # Service tiers
//
// Tiers are written in one vocabulary: standard, priority, flex, scale,
// batch, provisioned_throughput; anything else is kept lower-cased. A
// response's tier wins over the envelope's (it is what was served), and
// "batch": true wins over both.
//
// # Warnings
//
// Findings that do not reject the event are appended to Event.Warnings as
// "code: detail", e.g. "provider_total_mismatch: provider reports 120,
// normalized 118" or "cache_write_ttl_split_missing: …".
package adapters
