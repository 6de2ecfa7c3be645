package agent

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// packageTimeout bounds one dpkg or apt-get run.
const packageTimeout = 10 * time.Minute

// dpkg runs dpkg on the agent's root. Outside the host's own root (a
// sandbox, an image being built) it runs as dpkg --root does there: the
// database under that root and maintainer scripts without chroot.
func (l *Linux) dpkg(args ...string) error {
	if l.Root == "" {
		return errors.New("the agent has no root to manage packages under (--root)")
	}
	if l.Root != "/" {
		args = append([]string{"--root=" + l.Root, "--force-not-root", "--force-bad-path", "--force-script-chrootless"}, args...)
	}
	return l.run("dpkg", args...)
}

func (l *Linux) run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), packageTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLine(out))
	}
	return nil
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// installedVersion is the version of an installed package, or "".
func (l *Linux) installedVersion(name string) string {
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(l.Root, "var/lib/dpkg"), "-W", "-f=${Status}|${Version}", name).Output()
	if err != nil {
		return ""
	}
	status, version, _ := strings.Cut(string(out), "|")
	if status != "install ok installed" {
		return ""
	}
	return version
}

// ensurePackage brings a package to its state and reports whether this
// call installed it. A Present package comes from PackageDir
// (NAME_VERSION_ARCH.deb), or from apt-get on the host's own root.
func (l *Linux) ensurePackage(p *agentv1.Package) (installed bool, err error) {
	have := l.installedVersion(p.GetName())
	if p.GetState() == "Absent" {
		if have == "" {
			return false, nil
		}
		return false, l.dpkg("--remove", p.GetName())
	}
	if have != "" && (p.GetVersion() == "" || p.GetVersion() == have) {
		return false, nil
	}
	version := p.GetVersion()
	if version == "" {
		version = "*"
	}
	debs, _ := filepath.Glob(filepath.Join(l.PackageDir, p.GetName()+"_"+version+"_*.deb"))
	slices.Sort(debs)
	switch {
	case l.PackageDir != "" && len(debs) > 0:
		err = l.dpkg("--install", debs[len(debs)-1])
	case l.Root == "/":
		spec := p.GetName()
		if p.GetVersion() != "" {
			spec += "=" + p.GetVersion()
		}
		err = l.run("apt-get", "install", "-y", "--no-install-recommends", spec)
	default:
		return false, fmt.Errorf("no %s_%s_*.deb in the package directory %q", p.GetName(), version, l.PackageDir)
	}
	if err != nil {
		return false, err
	}
	if got := l.installedVersion(p.GetName()); got == "" || (p.GetVersion() != "" && got != p.GetVersion()) {
		return false, fmt.Errorf("dpkg reports %s at version %q after installing it", p.GetName(), got)
	}
	return have == "", nil
}
