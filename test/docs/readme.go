// Package docs checks that the README's walk-through runs as written: every
// command in its console blocks is executed against a running make dev, and
// what it prints must match what the README shows.
package docs

import (
	"bufio"
	"regexp"
	"strings"
)

// step is one `$ command` of a console block and the output the README shows
// for it.
type step struct {
	line    int // of the command in the README, for messages
	command string
	want    []string
}

// heredoc finds the delimiter of a `<<'EOF'` or `<<EOF` in a command line.
var heredoc = regexp.MustCompile(`<<-?'?([A-Za-z_]+)'?`)

// parseConsoleBlocks returns the steps of every ```console block in order.
// Blocks indented under a list item are read with their indentation removed.
func parseConsoleBlocks(readme string) []step {
	var (
		steps  []step
		in     bool
		indent string
		cur    *step
		delim  string // of the heredoc being read
		cont   bool   // the command goes on after a backslash
	)
	flush := func() {
		if cur != nil {
			for len(cur.want) > 0 && strings.TrimSpace(cur.want[len(cur.want)-1]) == "" {
				cur.want = cur.want[:len(cur.want)-1]
			}
			steps = append(steps, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(strings.NewReader(readme))
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		trimmed := strings.TrimLeft(raw, " ")
		if !in {
			if trimmed == "```console" {
				in, indent = true, raw[:len(raw)-len(trimmed)]
			}
			continue
		}
		if trimmed == "```" {
			flush()
			in = false
			continue
		}
		l := strings.TrimPrefix(raw, indent)
		switch {
		case delim != "":
			cur.command += "\n" + l
			if l == delim {
				delim = ""
			}
			continue
		case cont:
			cur.command += "\n" + l
		case strings.HasPrefix(l, "$ "):
			flush()
			cur = &step{line: n, command: strings.TrimPrefix(l, "$ ")}
		case cur != nil:
			cur.want = append(cur.want, l)
			continue
		default:
			continue
		}
		// l is a line of the command itself.
		cont = strings.HasSuffix(l, `\`)
		if m := heredoc.FindStringSubmatch(l); m != nil {
			delim = m[1]
		}
	}
	flush()
	return steps
}
