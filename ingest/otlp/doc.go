// Package otlp turns OpenTelemetry traces and metrics into usage events:
// every span that carries GenAI token usage (OpenTelemetry GenAI semantic
// conventions) becomes one llm.request event (schemas.Event), and so does
// each interval of the gen_ai.client.token.usage histogram (metrics.go), so
// an application already instrumented with OpenTelemetry needs no aivis
// client.
//
// Data enters as the body of an OTLP/HTTP trace export, which ingest
// receives at POST /v1/traces and hands to Decode (binary protobuf or OTLP
// JSON); Convert returns the events, the spans it rejected and the number
// of spans it skipped; Response and Status encode the answers OTLP/HTTP
// prescribes. Nothing here does I/O.
//
// # Spans
//
// A span is converted when it has gen_ai.usage.input_tokens or
// gen_ai.usage.output_tokens (or their deprecated forms prompt_tokens and
// completion_tokens); any other span is skipped, not rejected.
//
//	event field      span data
//	event_id         "otlp:" + hex trace_id + ":" + hex span_id (stable across exporter retries)
//	time             start_time_unix_nano
//	latency_ms       end_time_unix_nano − start_time_unix_nano
//	source           resource service.name, else "otlp"
//	provider         gen_ai.provider.name, else gen_ai.system, mapped by Provider
//	model            gen_ai.response.model, else gen_ai.request.model
//	operation        gen_ai.operation.name
//	status           "error" when the span status is ERROR or error.type is set, else "ok"
//	error_type       error.type
//	service_tier     openai.response.service_tier, else openai.request.service_tier
//	streaming        gen_ai.request.stream
//	usage.input_tokens             gen_ai.usage.input_tokens (else prompt_tokens)
//	usage.cache_read_input_tokens  gen_ai.usage.cache_read.input_tokens
//	usage.cache_write_input_tokens gen_ai.usage.cache_creation.input_tokens
//	usage.output_tokens            gen_ai.usage.output_tokens (else completion_tokens)
//	usage.reasoning_output_tokens  gen_ai.usage.reasoning.output_tokens
//	raw_usage        every gen_ai.usage.* attribute, as a JSON object
//	labels           service.name → service; deployment.environment.name (or
//	                 deployment.environment) → environment; aivis.team → team;
//	                 aivis.project → project; aivis.cost_center → cost_center.
//	                 Resource attributes first, span attributes override them.
//
// The conventions say input_tokens includes cache reads and writes and
// output_tokens includes reasoning, which is aivis's convention too, so the
// counts are taken as they are. Counts that cannot be inclusive (cache
// tokens above input_tokens, reasoning above output_tokens) come from an
// instrumentation that reports them exclusive: they are summed and the
// event carries warning otlp_input_excludes_cache or
// otlp_output_excludes_reasoning. Token counts may be int, integral double
// or a string of digits.
//
// A span with usage but no provider or model, with malformed ids or no
// start time is rejected: it is listed in Result.Rejected, and ingest
// reports it in partial_success.
//
// # Ids in OTLP JSON
//
// OTLP JSON writes trace and span ids as hex, where the protobuf JSON
// mapping that protojson follows expects base64. Decode lets protojson read
// them as base64 and then recovers the hex text from the decoded bytes
// (see fixJSONIDs); ids sent as base64 are accepted as well.
package otlp
