package docs

import (
	"regexp"
	"strings"
)

var (
	// An age or duration as kubectl prints it in a table: 3s, 2m10s, 4d.
	age = regexp.MustCompile(`^\d+[smhd](\d+[smhd])?$`)
	// A point in time, which no two runs share.
	timestamp = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)
	// What the README leaves out on purpose.
	elision = regexp.MustCompile(`…|\.\.\.`)
)

// linePattern turns a line the README shows into a pattern for the line a
// real run prints. Only what differs between runs is loosened: ages,
// timestamps, what the README elides with … or ..., and the width of table
// columns. Everything else must be printed exactly.
func linePattern(want string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^\s*`)
	for i, field := range strings.Fields(want) {
		if i > 0 {
			b.WriteString(`\s+`)
		}
		if age.MatchString(field) {
			b.WriteString(`\d+[smhd](\d+[smhd])?`)
			continue
		}
		b.WriteString(fieldPattern(field))
	}
	b.WriteString(`\s*$`)
	return regexp.MustCompile(b.String())
}

func fieldPattern(field string) string {
	var b strings.Builder
	for len(field) > 0 {
		loc := firstOf(field, timestamp, elision)
		if loc == nil {
			b.WriteString(regexp.QuoteMeta(field))
			break
		}
		b.WriteString(regexp.QuoteMeta(field[:loc[0]]))
		if timestamp.MatchString(field[loc[0]:loc[1]]) {
			b.WriteString(timestamp.String())
		} else {
			b.WriteString(`.*`)
		}
		field = field[loc[1]:]
	}
	return b.String()
}

func firstOf(s string, res ...*regexp.Regexp) []int {
	var first []int
	for _, re := range res {
		if loc := re.FindStringIndex(s); loc != nil && (first == nil || loc[0] < first[0]) {
			first = loc
		}
	}
	return first
}

// mismatch says which line of got differs from want, or "" when all match.
func mismatch(want, got []string) string {
	for len(got) > 0 && strings.TrimSpace(got[len(got)-1]) == "" {
		got = got[:len(got)-1]
	}
	for i, w := range want {
		if i >= len(got) {
			return "missing line " + quote(w)
		}
		if !linePattern(w).MatchString(got[i]) {
			return "line " + quote(got[i]) + " does not match " + quote(w)
		}
	}
	if len(got) > len(want) {
		return "unexpected line " + quote(got[len(want)])
	}
	return ""
}

func quote(s string) string { return "«" + s + "»" }

// expectsFailure says whether the README shows the command failing.
func expectsFailure(want []string) bool {
	if len(want) == 0 {
		return false
	}
	first := want[0]
	return strings.HasPrefix(first, "Error from server") || strings.HasPrefix(first, "error:") ||
		(strings.HasPrefix(first, "The ") && strings.Contains(first, " is invalid"))
}
