package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// exampleStep is one command of a worked example and what it prints.
type exampleStep struct{ command, output string }

// examples are the console blocks of each "### " section under "## Worked
// examples" of a page.
func examples(page string) map[string][]exampleStep {
	out := map[string][]exampleStep{}
	_, rest, ok := strings.Cut(page, "\n## Worked examples\n")
	Expect(ok).To(BeTrue(), "the page has no worked examples")
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	heading, inBlock := "", false
	for _, line := range strings.Split(rest, "\n") {
		switch {
		case strings.HasPrefix(line, "### "):
			heading = strings.TrimPrefix(line, "### ")
		case line == "```console":
			inBlock = true
		case line == "```":
			inBlock = false
		case inBlock && strings.HasPrefix(line, "$ "):
			out[heading] = append(out[heading], exampleStep{command: strings.TrimPrefix(line, "$ ")})
		case inBlock:
			steps := out[heading]
			steps[len(steps)-1].output += line + "\n"
		}
	}
	return out
}

// shell runs a command line as a person would type it, in the repository,
// with kubectl on PATH and the namespace as the kubeconfig's default.
func (k *kubectl) shell(line string) string {
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig, "PATH="+os.Getenv("KUBEBUILDER_ASSETS")+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	GinkgoWriter.Printf("$ %s\n%s\n", line, out)
	Expect(err).NotTo(HaveOccurred(), "%s: %s", line, out)
	return string(out)
}

var _ = Describe("docs/configurations.md", func() {
	ctx := context.Background()

	It("runs its worked examples as written, on simulated devices of each platform", func() {
		page, err := os.ReadFile(filepath.Join("..", "..", "docs", "configurations.md"))
		Expect(err).NotTo(HaveOccurred())
		fleets := map[string]struct {
			platform mdmv1alpha1.Platform
			devices  []string
		}{
			"A Linux kiosk box":          {mdmv1alpha1.PlatformLinux, []string{"lobby-1"}},
			"An Android phone fleet":     {mdmv1alpha1.PlatformAndroid, []string{"pixel-1", "pixel-2"}},
			"iPhones with a raw profile": {mdmv1alpha1.PlatformIOS, []string{"iphone-1", "iphone-2"}},
		}
		update := os.Getenv("UPDATE_EXAMPLES") != ""
		printed := map[string][]string{}
		found := examples(string(page))
		Expect(found).To(HaveLen(len(fleets)))
		for heading, steps := range found {
			By(heading)
			fleet, ok := fleets[heading]
			Expect(ok).To(BeTrue(), "no devices for the example %q", heading)
			f := newPlatformFleet(ctx, fleet.platform)
			for _, name := range fleet.devices {
				f.enroll(ctx, name)
				f.connect(name)
			}
			k := newKubectl(f.ns)
			k.shell("kubectl config set-context --current --namespace " + f.ns)
			for _, s := range steps {
				out := k.shell(s.command)
				if update {
					printed[heading] = append(printed[heading], out)
					continue
				}
				Expect(out).To(Equal(s.output), "$ %s (UPDATE_EXAMPLES=1 writes what it printed into the page)", s.command)
			}
		}
		if update {
			Expect(os.WriteFile(filepath.Join("..", "..", "docs", "configurations.md"), []byte(withOutputs(string(page), printed)), 0o644)).To(Succeed())
		}
	})
})

// withOutputs is the page with each example command followed by what it
// printed.
func withOutputs(page string, printed map[string][]string) string {
	var b strings.Builder
	heading, inBlock, inExamples, n := "", false, false, 0
	for _, line := range strings.Split(page, "\n") {
		switch {
		case line == "## Worked examples":
			inExamples = true
		case strings.HasPrefix(line, "## "):
			inExamples = false
		case strings.HasPrefix(line, "### "):
			heading, n = strings.TrimPrefix(line, "### "), 0
		case inExamples && line == "```console":
			inBlock = true
		case line == "```":
			inBlock = false
		case inBlock && strings.HasPrefix(line, "$ "):
			b.WriteString(line + "\n" + printed[heading][n])
			n++
			continue
		case inBlock:
			continue
		}
		b.WriteString(line + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}
