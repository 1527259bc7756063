package gpuprobe

import (
	"encoding/json"
	"fmt"
	"io"
)

// PrintSnapshot writes one JSON line per GPU, for `aivis gpuprobe --once`.
// A disabled probe writes one status line with its reason and no error, so
// the command also succeeds on hosts without a GPU.
func PrintSnapshot(p *Probe, w io.Writer) error {
	enc := json.NewEncoder(w)
	if !p.Enabled() {
		if err := enc.Encode(map[string]any{"enabled": false, "reason": p.DisabledReason()}); err != nil {
			return fmt.Errorf("writing the GPU snapshot: %w", err)
		}
		return nil
	}
	samples, err := p.Snapshot()
	for _, s := range samples {
		if werr := enc.Encode(s); werr != nil {
			return fmt.Errorf("writing the GPU snapshot: %w", werr)
		}
	}
	return err
}
