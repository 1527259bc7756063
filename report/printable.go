package report

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s with every character that could drive or garble a
// terminal written as a Go escape (\x1b, \u202e): C0 and C1 controls, DEL,
// the bidirectional formatting characters, the line and paragraph
// separators, and bytes that are not UTF-8. Team, model and project names
// come from producers, so anything that prints them to a terminal passes
// them through here: a hostile name then prints as one line of inert text
// and cannot move the cursor, retitle the window or reorder the columns.
// Text without such characters is returned unchanged.
func Printable(s string) string {
	i := firstUnprintable(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
		case unprintable(r):
			q := strconv.QuoteRune(r) // '\x1b', '\u202e', '\n'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func firstUnprintable(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unprintable(r) {
			return i
		}
		i += size
	}
	return -1
}

// unprintable reports the runes that Printable escapes.
func unprintable(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}
