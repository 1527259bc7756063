package adapters

import (
	"encoding/json"
)

// nativeSource is the source of events that arrive in a gateway's own
// logging format, without an envelope around them.
const nativeSource = "litellm"

// DecodeFor parses one value posted to adapter a. Besides an Envelope, the
// litellm adapter takes LiteLLM's own StandardLoggingPayload as its
// generic_api logging callback sends it (a JSON array of payloads, no
// envelope): such a payload is recognised by its call_type, response_cost
// or custom_llm_provider field and the absence of "source", and wrapped in
// an envelope with source "litellm", so LiteLLM can post to aivis with
// configuration alone.
func DecodeFor(a Adapter, data []byte) (Envelope, error) {
	if _, ok := a.(liteLLM); ok && isNativeLiteLLM(data) {
		return Envelope{Source: nativeSource, Response: json.RawMessage(data)}, nil
	}
	return DecodeEnvelope(data)
}

func isNativeLiteLLM(data []byte) bool {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return false
	}
	if _, ok := top["source"]; ok {
		return false
	}
	for _, k := range []string{"call_type", "response_cost", "custom_llm_provider"} {
		if _, ok := top[k]; ok {
			return true
		}
	}
	return false
}
