package reconcile

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// AWS CUR columns, by their legacy CUR names; Data Exports (CUR 2.0)
// spell them line_item_usage_type and so on, which csvTable treats alike.
const (
	curStart      = "lineItem/UsageStartDate"
	curProduct    = "lineItem/ProductCode"
	curUsageType  = "lineItem/UsageType"
	curCost       = "lineItem/UnblendedCost"
	curType       = "lineItem/LineItemType"
	curAmount     = "lineItem/UsageAmount"
	curCurrency   = "lineItem/CurrencyCode"
	curUnit       = "pricing/unit"
	curProductNam = "product/productName"
)

// ParseAWSCUR reads AWS Cost and Usage Report (or Data Exports CUR 2.0)
// CSV rows and keeps those of Amazon Bedrock (lineItem/ProductCode
// AmazonBedrock, or a product name that says Bedrock, as Marketplace
// models have). Token usage types (USE1-Claude3.5Sonnet-input-tokens,
// …-cache-read-input-token-count) give model and meter; Credit, Discount,
// EdpDiscount, PrivateRateDiscount, BundledDiscount, SavingsPlanNegation
// and Refund lines are credits; Tax and fees are left out, with a note.
//
// Quantities are lineItem/UsageAmount in pricing/unit; the unit of Bedrock
// token usage is not in AWS's column reference, so it is read from the
// unit text ("1K tokens", "1M tokens", "tokens") and left unknown
// otherwise.
func ParseAWSCUR(name string, data []byte, models *Models) (*Bill, error) {
	t, err := newCSVTable(name, data)
	if err != nil {
		return nil, err
	}
	if err := t.require(curStart, curProduct, curUsageType, curCost); err != nil {
		return nil, err
	}
	bill := &Bill{Format: FormatAWSCUR}
	skipped := 0
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if !strings.EqualFold(t.get(curProduct), "AmazonBedrock") && !strings.Contains(strings.ToLower(t.get(curProductNam)), "bedrock") {
			skipped++
			continue
		}
		credit := false
		switch lt := t.get(curType); lt {
		case "", "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage":
		case "Credit", "Discount", "EdpDiscount", "PrivateRateDiscount", "BundledDiscount", "SavingsPlanNegation", "Refund", "DistributorDiscount":
			credit = true
		default:
			bill.note("%s: %s lines left out: they are not usage, credits or discounts", name, lt)
			continue
		}
		if c := t.get(curCurrency); c != "" && !strings.EqualFold(c, "USD") {
			return nil, t.fail(curCurrency, fmt.Errorf("%q: aivis costs are USD", c))
		}
		start, err := parseCURTime(t.get(curStart))
		if err != nil {
			return nil, t.fail(curStart, err)
		}
		cost, err := parseUSD(t.get(curCost))
		if err != nil {
			return nil, t.fail(curCost, err)
		}
		day := dayOf(start)
		l := Line{Day: day, Provider: ProviderBedrock, Meter: MeterOther, CostUSD: cost, Credit: credit || cost.IsNegative(), Where: t.where()}
		ut := t.get(curUsageType)
		family, meter, isTokens := parseBedrockUsageType(ut)
		if fam := familyKey(family); fam != "" {
			if cands, known := bedrockFamilies[fam]; known {
				l.Model, l.Ambiguous = models.resolve(ProviderBedrock, family, cands, day)
			} else {
				l.Model = family
				bill.note("%s: Bedrock usage type %q names a model aivis has no mapping for; its rows are compared under %q", name, ut, family)
			}
		}
		l.Meter = meter
		if isTokens && !l.Credit {
			n, known, err := curTokens(t.get(curAmount), t.get(curUnit))
			if err != nil {
				return nil, t.fail(curAmount, err)
			}
			if known {
				l.Tokens, l.HasTokens = n, true
			} else {
				bill.note("%s: pricing/unit %q of %s is not a token unit aivis knows; token quantities are not compared", name, t.get(curUnit), ut)
			}
		}
		bill.Lines = append(bill.Lines, l)
	}
	if skipped > 0 {
		bill.note("%s: %d rows of other AWS services left out", name, skipped)
	}
	return bill, nil
}

func parseCURTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want 2006-01-02T15:04:05Z)", s)
}

// curTokens converts a usage amount in unit to tokens; known is false for
// a unit that is not a token count.
func curTokens(amount, unit string) (n int64, known bool, err error) {
	u := strings.ToLower(strings.ReplaceAll(unit, " ", ""))
	var scale int64
	switch {
	case !strings.Contains(u, "token"):
		return 0, false, nil
	case strings.HasPrefix(u, "1k") || strings.HasPrefix(u, "1000") || strings.HasPrefix(u, "1,000tokens") || strings.Contains(u, "thousand"):
		scale = 1000
	case strings.HasPrefix(u, "1m") || strings.HasPrefix(u, "1000000") || strings.HasPrefix(u, "1,000,000") || strings.Contains(u, "million"):
		scale = 1_000_000
	default:
		scale = 1
	}
	a, err := decimal.NewFromString(strings.TrimSpace(amount))
	if err != nil {
		return 0, false, fmt.Errorf("%q is not a number", amount)
	}
	if a.IsNegative() {
		return 0, false, fmt.Errorf("%q is negative", amount)
	}
	tokens := a.Mul(decimal.NewFromInt(scale)).Round(0)
	if tokens.GreaterThan(decimal.NewFromInt(maxTokens)) {
		return 0, false, errors.New("more tokens than any export holds")
	}
	return tokens.IntPart(), true, nil
}
