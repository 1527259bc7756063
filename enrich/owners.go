package enrich

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
	"github.com/aivis-dev/aivis/schemas"
)

//go:embed defaults/owners.yaml
var defaultOwnersYAML []byte

// Labels honored directly when trust_event_labels is on.
const (
	LabelTeam       = "team"
	LabelProject    = "project"
	LabelCostCenter = "cost_center"
)

// Owner rule names recorded in schemas.Owner.Rule.
const (
	RuleAPIKey      = "api_key"
	RuleNamespace   = "namespace"
	RuleEventLabels = "event_labels"
	RuleDefault     = "default"
)

type ownersFile struct {
	// TrustEventLabels lets events name their own team/project through the
	// "team", "project" and "cost_center" labels; default true.
	TrustEventLabels *bool                `yaml:"trust_event_labels"`
	APIKeys          map[string]ownerSpec `yaml:"api_keys"`
	// Namespaces attributes gpu.usage events by Kubernetes namespace.
	Namespaces map[string]ownerSpec `yaml:"namespaces"`
	Labels     []labelRule          `yaml:"labels"`
}

type ownerSpec struct {
	Team       string `yaml:"team"`
	Project    string `yaml:"project"`
	CostCenter string `yaml:"cost_center"`
}

type labelRule struct {
	Name       string            `yaml:"name"`
	Match      map[string]string `yaml:"match"`
	Team       string            `yaml:"team"`
	Project    string            `yaml:"project"`
	CostCenter string            `yaml:"cost_center"`
}

type labelPair struct{ key, value string }

type compiledRule struct {
	name  string
	match []labelPair
	owner ownerSpec
}

// Owners is a parsed, immutable set of ownership rules. It is safe for
// concurrent use.
type Owners struct {
	trustLabels bool
	apiKeys     map[string]ownerSpec
	namespaces  map[string]ownerSpec
	rules       []compiledRule
}

// LoadOwners reads and parses an ownership rules file.
func LoadOwners(path string) (*Owners, error) {
	data, err := yamlstrict.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("opening owners file %q: %w", path, err)
	}
	o, err := ParseOwners(data)
	if err != nil {
		return nil, fmt.Errorf("loading owners file %q: %w", path, err)
	}
	return o, nil
}

// DefaultOwners returns the ownership rules embedded in the binary.
func DefaultOwners() (*Owners, error) {
	o, err := ParseOwners(defaultOwnersYAML)
	if err != nil {
		return nil, fmt.Errorf("parsing the embedded default owners: %w", err)
	}
	return o, nil
}

// ParseOwners parses and validates an ownership rules document, reporting
// every problem with its key path.
func ParseOwners(data []byte) (*Owners, error) {
	var f ownersFile
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("decoding owners YAML: %w", err)
	}
	p := yamlstrict.Problems{}
	o := &Owners{
		trustLabels: f.TrustEventLabels == nil || *f.TrustEventLabels,
		apiKeys:     make(map[string]ownerSpec, len(f.APIKeys)),
		namespaces:  make(map[string]ownerSpec, len(f.Namespaces)),
	}
	for k, s := range f.APIKeys {
		if k == "" {
			p.Add("api_keys", "a key id must not be empty")
			continue
		}
		if checkOwner(&p, "api_keys."+k, s) {
			o.apiKeys[k] = s
		}
	}
	for ns, s := range f.Namespaces {
		if ns == "" {
			p.Add("namespaces", "a namespace must not be empty")
			continue
		}
		if checkOwner(&p, "namespaces."+ns, s) {
			o.namespaces[ns] = s
		}
	}
	for i, r := range f.Labels {
		path := fmt.Sprintf("labels[%d]", i)
		if len(r.Match) == 0 {
			p.Add(path+".match", "needs at least one label: value pair (an empty match would catch every event)")
			continue
		}
		s := ownerSpec{Team: r.Team, Project: r.Project, CostCenter: r.CostCenter}
		if !checkOwner(&p, path, s) {
			continue
		}
		cr := compiledRule{name: r.Name, owner: s}
		if cr.name == "" {
			cr.name = path
		}
		for k, v := range r.Match {
			cr.match = append(cr.match, labelPair{k, v})
		}
		o.rules = append(o.rules, cr)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return o, nil
}

func checkOwner(p *yamlstrict.Problems, path string, s ownerSpec) bool {
	if strings.TrimSpace(s.Team) == "" {
		p.Add(path+".team", "is required")
		return false
	}
	return true
}

// Attribute returns who owns an event and whether no rule matched. Rules
// apply in this order: api_keys by api_key_id, namespaces (gpu.usage), label
// rules (first match wins), the event's own team label when trusted, else
// the default owner "unattributed". With trusted labels, a matched rule
// without project or cost centre takes them from the event's labels.
func (o *Owners) Attribute(ev *schemas.Event) (owner schemas.Owner, unowned bool) {
	var s ownerSpec
	switch {
	case o.lookupKey(ev.APIKeyID, &s):
		owner.Rule = RuleAPIKey
	case ev.GPU != nil && o.lookupNamespace(ev.GPU.Namespace, &s):
		owner.Rule = RuleNamespace
	default:
		for i := range o.rules {
			if o.rules[i].matches(ev.Labels) {
				s, owner.Rule = o.rules[i].owner, o.rules[i].name
				break
			}
		}
	}
	if owner.Rule == "" && o.trustLabels {
		if t := labelValue(ev.Labels, LabelTeam); t != "" {
			s.Team, owner.Rule = t, RuleEventLabels
		}
	}
	if owner.Rule == "" {
		s.Team, owner.Rule, unowned = schemas.Unattributed, RuleDefault, true
	}
	if o.trustLabels {
		if s.Project == "" {
			s.Project = labelValue(ev.Labels, LabelProject)
		}
		if s.CostCenter == "" {
			s.CostCenter = labelValue(ev.Labels, LabelCostCenter)
		}
	}
	owner.Team, owner.Project, owner.CostCenter = s.Team, s.Project, s.CostCenter
	return owner, unowned
}

func (o *Owners) lookupKey(id string, s *ownerSpec) bool {
	if id == "" {
		return false
	}
	v, ok := o.apiKeys[id]
	*s = v
	return ok
}

func (o *Owners) lookupNamespace(ns string, s *ownerSpec) bool {
	if ns == "" {
		return false
	}
	v, ok := o.namespaces[ns]
	*s = v
	return ok
}

func (r *compiledRule) matches(labels map[string]string) bool {
	for _, m := range r.match {
		if v, ok := labels[m.key]; !ok || v != m.value {
			return false
		}
	}
	return true
}

// labelValue returns a trusted label, ignoring values too long to be a
// name so that one bad producer cannot flood the team dimension.
func labelValue(labels map[string]string, key string) string {
	v := strings.TrimSpace(labels[key])
	if len(v) > schemas.MaxIDLen {
		return ""
	}
	return v
}

// ownerMemo keeps Owners.Attribute's answers for a stream of events, for
// those whose labels a schemas.Decoder handed back from the sets it keeps
// (or that have none): without GPU usage, such an event's owner follows
// from its api_key_id and the labels' number (Decoder.LabelsID) alone.
// A stream names a bounded set of owners, and attributing an event again
// costs more than looking its owner up. The zero value is ready; it keeps
// the answers of one Owners at a time.
type ownerMemo struct {
	owners *Owners
	slots  *[ownerSlots]ownerSlot // allocated on first use
}

type ownerSlot struct {
	labels  uint64 // LabelsID, 0 for no labels
	key     string
	owner   schemas.Owner
	unowned bool
	used    bool
}

const (
	ownerSlotBits = 8
	ownerSlots    = 1 << ownerSlotBits
)

// attribute is o.Attribute(ev), ev's labels numbered labels by the
// decoder that decoded ev (0 when they are none of its sets).
func (m *ownerMemo) attribute(o *Owners, ev *schemas.Event, labels uint64) (schemas.Owner, bool) {
	if ev.GPU != nil || (labels == 0 && len(ev.Labels) > 0) {
		return o.Attribute(ev)
	}
	if m.owners != o || m.slots == nil {
		m.owners, m.slots = o, new([ownerSlots]ownerSlot)
	}
	s := &m.slots[ownerSlotOf(labels, ev.APIKeyID)]
	if s.used && s.labels == labels && s.key == ev.APIKeyID {
		return s.owner, s.unowned
	}
	owner, unowned := o.Attribute(ev)
	*s = ownerSlot{labels: labels, key: ev.APIKeyID, owner: owner, unowned: unowned, used: true}
	return owner, unowned
}

// ownerSlotOf picks the slot of an owner by labels number and key.
func ownerSlotOf(labels uint64, key string) uint64 {
	return (labels*0x9e3779b97f4a7c15 + schemas.MemoryWord(key)) * 0x9e3779b97f4a7c15 >> (64 - ownerSlotBits)
}
