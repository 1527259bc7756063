package pricing

import (
	"fmt"
	"strings"

	"github.com/aivis-dev/aivis/internal/yamlstrict"
	"github.com/shopspring/decimal"
)

// contractSpec is one entry of the contracts section: per-team prices that
// apply after list price. Contracts are tried in file order; the first
// whose team and match fit the event applies.
type contractSpec struct {
	// Name labels the contract in Quote.Contract; it defaults to the team.
	Name string `yaml:"name,omitempty"`
	// Team is the owner team, or "*" for every team.
	Team  string        `yaml:"team"`
	Match contractMatch `yaml:"match,omitempty"`
	// Discount is a fraction of the cost after contract rates, e.g. "0.15".
	Discount *string `yaml:"discount,omitempty"`
	// Rates replace the list rate of exactly the keys given, whatever tier
	// or service tier applies; keys not given keep the list rate.
	Rates rateSpec `yaml:"rates,omitempty"`
}

// contractMatch narrows a contract; empty fields match anything.
type contractMatch struct {
	// Provider is the catalog's provider name (after provider_aliases).
	Provider string `yaml:"provider,omitempty"`
	// Model is the event's model name, exactly.
	Model string `yaml:"model,omitempty"`
	// PriceID is a catalog entry id (without the @effective_from part).
	PriceID string `yaml:"price_id,omitempty"`
}

// contractsFile is the layout of a separate contracts file.
type contractsFile struct {
	Contracts []contractSpec `yaml:"contracts"`
}

type contract struct {
	name, team               string
	provider, model, priceID string
	discount                 string // canonical fraction, for the line
	discountPPM              uint64 // parts per million
	rates                    rateTable
	hasRate                  [numRateKeys]bool
}

// ppm is the scale of discountPPM; discounts have at most six decimals.
const ppm = 1_000_000

func parseContracts(p *yamlstrict.Problems, prefix string, specs []contractSpec) []contract {
	out := make([]contract, 0, len(specs))
	for i, s := range specs {
		path := fmt.Sprintf("%s[%d]", prefix, i)
		k := contract{
			name: s.Name, team: strings.TrimSpace(s.Team),
			provider: strings.ToLower(strings.TrimSpace(s.Match.Provider)),
			model:    s.Match.Model, priceID: s.Match.PriceID,
		}
		if k.team == "" {
			p.Add(path+".team", "is required (an owner team, or \"*\" for every team)")
			continue
		}
		if k.name == "" {
			k.name = k.team
		}
		ok := true
		if s.Discount != nil {
			d, err := decimal.NewFromString(strings.TrimSpace(*s.Discount))
			switch {
			case err != nil:
				p.Add(path+".discount", "%q is not a decimal fraction (e.g. \"0.15\" for 15%%)", *s.Discount)
				ok = false
			case d.Sign() < 0 || d.GreaterThan(decimal.NewFromInt(1)):
				p.Add(path+".discount", "%s must be a fraction between 0 and 1 (e.g. \"0.15\" for 15%%)", *s.Discount)
				ok = false
			case !d.Shift(6).IsInteger():
				p.Add(path+".discount", "%s has more than 6 decimal places", *s.Discount)
				ok = false
			default:
				k.discountPPM = uint64(d.Shift(6).IntPart())
				k.discount = d.String()
			}
		}
		for j, sp := range s.Rates.slots() {
			if *sp == nil {
				continue
			}
			d, good := parsePrice(p, path+".rates."+rateKeyNames[j], **sp, maxPricePerMillion)
			if !good {
				ok = false
				continue
			}
			k.rates[j] = rate{picosPerToken: d.Shift(6).IntPart(), perMillion: d.String()}
			k.hasRate[j] = true
		}
		if s.Discount == nil && k.hasRate == [numRateKeys]bool{} {
			p.Add(path, "needs a discount or rates; a contract without either changes nothing")
			ok = false
		}
		if ok {
			out = append(out, k)
		}
	}
	return out
}

// findContract returns the first contract for team whose match fits.
func (c *Catalog) findContract(team, provider, model, priceID string) *contract {
	for i := range c.contracts {
		k := &c.contracts[i]
		if (k.team == team || k.team == "*") &&
			(k.provider == "" || k.provider == provider) &&
			(k.model == "" || k.model == model) &&
			(k.priceID == "" || k.priceID == priceID) {
			return k
		}
	}
	return nil
}

// WithContracts parses a separate contracts file (one contracts: list, in
// the catalog's format) and returns a copy of the catalog that tries those
// contracts before the catalog's own.
func (c *Catalog) WithContracts(data []byte) (*Catalog, error) {
	var f contractsFile
	if err := yamlstrict.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("decoding contracts YAML: %w", err)
	}
	p := yamlstrict.Problems{}
	ks := parseContracts(&p, "contracts", f.Contracts)
	if err := p.Err(); err != nil {
		return nil, err
	}
	out := *c
	out.resolved = newResolveCache()
	out.contracts = append(ks, c.contracts...)
	return &out, nil
}
