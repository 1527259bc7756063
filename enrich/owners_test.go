package enrich

import (
	"os"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/schemas"
)

func TestAttribute(t *testing.T) {
	o, err := LoadOwners("testdata/owners.yaml")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := ParseOwners([]byte("trust_event_labels: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := func(key string, labels map[string]string) *schemas.Event {
		e := llmEvent("testprov", "full", nil)
		e.APIKeyID, e.Labels = key, labels
		return e
	}
	gpuEv := func(ns string, labels map[string]string) *schemas.Event {
		return &schemas.Event{Kind: schemas.KindGPUUsage, Labels: labels, GPU: &schemas.GPUUsage{GPUModel: "A100", Namespace: ns}}
	}
	cases := []struct {
		name    string
		owners  *Owners
		ev      *schemas.Event
		want    schemas.Owner
		unowned bool
	}{
		{"api key", o, ev("key-search", map[string]string{"team": "ignored"}),
			schemas.Owner{Team: "search", Project: "ranking", CostCenter: "CC-1", Rule: RuleAPIKey}, false},
		{"api key fills blanks from trusted labels", o, ev("key-bare", map[string]string{"project": "p1", "cost_center": "CC-9"}),
			schemas.Owner{Team: "platform", Project: "p1", CostCenter: "CC-9", Rule: RuleAPIKey}, false},
		{"api key beats label rules", o, ev("key-bare", map[string]string{"service": "checkout"}),
			schemas.Owner{Team: "platform", Rule: RuleAPIKey}, false},
		{"first matching label rule wins", o, ev("", map[string]string{"service": "checkout", "env": "prod"}),
			schemas.Owner{Team: "payments", Project: "checkout", Rule: "checkout"}, false},
		{"unnamed rule is named by position", o, ev("", map[string]string{"service": "checkout", "env": "dev"}),
			schemas.Owner{Team: "payments-staging", Rule: "labels[1]"}, false},
		{"label rule beats event team label", o, ev("", map[string]string{"service": "checkout", "team": "x"}),
			schemas.Owner{Team: "payments-staging", Rule: "labels[1]"}, false},
		{"trusted event labels", o, ev("unknown-key", map[string]string{"team": "ml", "project": "chat"}),
			schemas.Owner{Team: "ml", Project: "chat", Rule: RuleEventLabels}, false},
		{"overlong team label is ignored", o, ev("", map[string]string{"team": strings.Repeat("x", 200)}),
			schemas.Owner{Team: schemas.Unattributed, Rule: RuleDefault}, true},
		{"default", o, ev("", nil),
			schemas.Owner{Team: schemas.Unattributed, Rule: RuleDefault}, true},
		{"default keeps a trusted project", o, ev("", map[string]string{"project": "chat"}),
			schemas.Owner{Team: schemas.Unattributed, Project: "chat", Rule: RuleDefault}, true},
		{"untrusted labels are ignored", untrusted, ev("", map[string]string{"team": "ml", "project": "chat"}),
			schemas.Owner{Team: schemas.Unattributed, Rule: RuleDefault}, true},
		{"gpu namespace", o, gpuEv("ml-train", nil),
			schemas.Owner{Team: "research", Project: "pretraining", Rule: RuleNamespace}, false},
		{"gpu unknown namespace falls through", o, gpuEv("other", map[string]string{"team": "infra"}),
			schemas.Owner{Team: "infra", Rule: RuleEventLabels}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, unowned := tc.owners.Attribute(tc.ev)
			if got != tc.want || unowned != tc.unowned {
				t.Errorf("Attribute = %+v unowned=%v, want %+v unowned=%v", got, unowned, tc.want, tc.unowned)
			}
		})
	}
}

func TestParseOwnersErrors(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"unknown key", "labels:\n  - match: {a: b}\n    team: t\n    teem: x\n", "labels[0].teem: unknown key"},
		{"unknown key in map value", "api_keys:\n  k1: {team: t, projcet: p}\n", "api_keys.k1.projcet: unknown key"},
		{"empty match", "labels:\n  - team: t\n", "labels[0].match: needs at least one"},
		{"missing team", "api_keys:\n  k1: {project: p}\n", "api_keys.k1.team: is required"},
		{"missing namespace team", "namespaces:\n  ns: {project: p}\n", "namespaces.ns.team: is required"},
		{"wrong type", "trust_event_labels: maybe\n", "cannot unmarshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOwners([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaultOwners(t *testing.T) {
	o, err := DefaultOwners()
	if err != nil {
		t.Fatal(err)
	}
	if !o.trustLabels {
		t.Error("default owners should trust event labels")
	}
}

func FuzzParseOwners(f *testing.F) {
	for _, p := range []string{"testdata/owners.yaml", "defaults/owners.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("labels: [{match: {a: b}, team: t}]\n"))
	f.Add([]byte("api_keys: {k: {team: t}}\nnamespaces: {n: {team: t}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseOwners(data)
		if err != nil {
			return
		}
		got, unowned := o.Attribute(&schemas.Event{APIKeyID: "k", Labels: map[string]string{"a": "b"}, GPU: &schemas.GPUUsage{Namespace: "n"}})
		if got.Team == "" || got.Rule == "" || unowned != (got.Rule == RuleDefault) {
			t.Fatalf("Attribute returned %+v unowned=%v", got, unowned)
		}
	})
}

// TestOwnerMemoKeysThatShareASlot attributes, alternately, events of two
// api keys whose owners the memo keeps in one slot, with one labels number
// and with none: each answer is the key's own.
func TestOwnerMemoKeysThatShareASlot(t *testing.T) {
	o, err := LoadOwners("testdata/owners.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, labels := range []uint64{0, 7} {
		// key-search's owner is search; keys cut from one string at
		// other offsets are nobody's, and one of them shares its slot.
		mem := strings.Repeat("key-search", 2*ownerSlots)
		first, second := mem[:10], ""
		for off := 1; off+10 <= len(mem); off++ {
			if k := mem[off : off+10]; k != first && ownerSlotOf(labels, k) == ownerSlotOf(labels, first) {
				second = k
				break
			}
		}
		if second == "" {
			t.Fatal("no second key of the first key's slot")
		}
		var m ownerMemo
		for i := range 6 {
			ev := llmEvent("p", "m", nil)
			ev.APIKeyID = []string{first, second}[i%2]
			if labels != 0 {
				ev.Labels = map[string]string{"team": "labelled"}
			}
			got, gotUnowned := m.attribute(o, ev, labels)
			if want, wantUnowned := o.Attribute(ev); got != want || gotUnowned != wantUnowned {
				t.Fatalf("labels %d, key %q: %+v (unowned %v), want %+v (unowned %v)", labels, ev.APIKeyID, got, gotUnowned, want, wantUnowned)
			}
		}
	}
}
