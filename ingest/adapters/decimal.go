package adapters

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxDecimalLen is the longest decimal string schemas accepts for a cost.
const maxDecimalLen = 40

// plainDecimal rewrites the text of a non-negative JSON number, e.g.
// "1.25e-05", as a plain decimal, "0.0000125", digit for digit: no float is
// involved, so no rounding happens.
func plainDecimal(num string) (string, error) {
	if strings.HasPrefix(num, "-") {
		if strings.Trim(num, "-0.eE+") == "" {
			return "0", nil
		}
		return "", fmt.Errorf("%s is negative; a cost must be 0 or more", num)
	}
	mant, expText, hasExp := strings.Cut(strings.ToLower(num), "e")
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expText)
		if err != nil || e < -maxDecimalLen || e > maxDecimalLen {
			return "", fmt.Errorf("%s has an exponent out of range; send the cost as a plain decimal", num)
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", errors.New(num + " is not a JSON number")
	}
	// The decimal point sits after point digits of digits.
	point := len(intPart) + exp
	switch {
	case point <= 0:
		digits = strings.Repeat("0", 1-point) + digits
		point = 1
	case point > len(digits):
		digits += strings.Repeat("0", point-len(digits))
	}
	ip := strings.TrimLeft(digits[:point], "0")
	if ip == "" {
		ip = "0"
	}
	fp := strings.TrimRight(digits[point:], "0")
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if len(out) > maxDecimalLen {
		return "", fmt.Errorf("%s has more than %d digits; round the cost to fewer decimal places", num, maxDecimalLen)
	}
	return out, nil
}
