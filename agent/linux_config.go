package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// unitDir is where the agent installs systemd units, under Root.
const unitDir = "etc/systemd/system"

// owned is what the Linux agent wrote under Root, so that a configuration
// removed or changed takes away exactly what the agent put there and
// nothing of the host's own.
type owned struct {
	Files []string `json:"files"`
	// Links are the multi-user.target.wants links of enabled units.
	Links []string `json:"links"`
	// Packages are the packages the agent installed.
	Packages []string `json:"packages,omitempty"`
}

func (l *Linux) ownedPath() string { return filepath.Join(l.Dir, "owned.json") }

func (l *Linux) readOwned() owned {
	var o owned
	if b, err := os.ReadFile(l.ownedPath()); err == nil {
		_ = json.Unmarshal(b, &o)
	}
	return o
}

func (l *Linux) writeOwned(o owned) error {
	slices.Sort(o.Files)
	slices.Sort(o.Links)
	slices.Sort(o.Packages)
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	tmp := l.ownedPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.ownedPath())
}

// under joins a clean absolute path to Root, refusing one that would leave
// it.
func (l *Linux) under(path string) (string, error) {
	root := l.Root
	if root == "" {
		return "", errors.New("the agent has no root to write configuration files under (--root)")
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return "", fmt.Errorf("path %q is not absolute and clean", path)
	}
	return filepath.Join(root, path), nil
}

// applyConfigurations converges files, systemd units and packages to the
// configurations and reports each. A configuration is all or nothing for
// its files and units: when one of its settings fails, those it already
// wrote in this pass are put back as they were. Settings a Linux host has no
// use for (passcode, Wi-Fi, apps, ...) are reported Unsupported.
func (l *Linux) applyConfigurations(configs []*agentv1.Configuration) []*agentv1.ConfigurationState {
	before := l.readOwned()
	var now owned
	var states []*agentv1.ConfigurationState
	for _, c := range configs {
		st, owns := l.applyConfiguration(c, before)
		now.Files = append(now.Files, owns.Files...)
		now.Links = append(now.Links, owns.Links...)
		now.Packages = append(now.Packages, owns.Packages...)
		states = append(states, st)
	}
	// What the agent put there before and no configuration wants any more.
	for _, p := range before.Links {
		if !slices.Contains(now.Links, p) {
			l.remove(p)
		}
	}
	for _, p := range before.Files {
		if !slices.Contains(now.Files, p) {
			l.remove(p)
		}
	}
	for _, p := range before.Packages {
		if !slices.Contains(now.Packages, p) {
			if err := l.dpkg("--remove", p); err != nil {
				// Still the agent's: the next pass tries again.
				now.Packages = append(now.Packages, p)
			}
		}
	}
	_ = l.writeOwned(now)
	return states
}

// applyConfiguration applies one configuration and returns its state and
// what the agent owns for it afterwards.
func (l *Linux) applyConfiguration(c *agentv1.Configuration, before owned) (*agentv1.ConfigurationState, owned) {
	st := &agentv1.ConfigurationState{Name: c.GetName(), State: "Applied", Revision: c.GetRevision()}
	var owns owned
	var journal undo
	var failed []string
	fail := func(path, reason, msg string) {
		st.Settings = append(st.Settings, &agentv1.SettingState{Path: path, Reason: reason, Message: msg})
		if reason == "Failed" {
			failed = append(failed, path)
		}
	}
	for _, f := range c.GetSettings().GetFiles() {
		if err := l.writeFile(&journal, f.GetPath(), f.GetContent(), fs.FileMode(f.GetMode())); err != nil {
			fail("files["+f.GetPath()+"]", "Failed", err.Error())
			continue
		}
		owns.Files = append(owns.Files, f.GetPath())
	}
	for _, u := range c.GetSettings().GetSystemdUnits() {
		path := "systemdUnits[" + u.GetName() + "]"
		unit := "/" + unitDir + "/" + u.GetName()
		if u.GetContent() != "" {
			if err := l.writeFile(&journal, unit, []byte(u.GetContent()), 0o644); err != nil {
				fail(path, "Failed", err.Error())
				continue
			}
			owns.Files = append(owns.Files, unit)
		}
		if u.GetEnabled() {
			link := "/" + unitDir + "/multi-user.target.wants/" + u.GetName()
			if err := l.link(&journal, link, unit); err != nil {
				fail(path, "Failed", err.Error())
				continue
			}
			owns.Links = append(owns.Links, link)
		}
	}
	for _, p := range c.GetSettings().GetPackages() {
		installed, err := l.ensurePackage(p)
		if err != nil {
			fail("packages["+p.GetName()+"]", "Failed", err.Error())
			continue
		}
		// A package the agent installed, or one it installed before and
		// still manages, is the agent's to remove when it is no longer
		// wanted; one the host had is not.
		if installed || slices.Contains(before.Packages, p.GetName()) {
			if p.GetState() == "Present" {
				owns.Packages = append(owns.Packages, p.GetName())
			}
		}
	}
	for path := range settingValues(c.GetSettings()) {
		if !strings.HasPrefix(path, "files[") && !strings.HasPrefix(path, "systemdUnits[") && !strings.HasPrefix(path, "packages[") {
			fail(path, "Unsupported", "the Linux agent does not apply "+strings.SplitN(path, "[", 2)[0])
		}
	}
	if len(failed) > 0 {
		// Files and units go back to what they were; packages installed on
		// the way stay (dpkg has no undo) and stay the agent's.
		journal.rollback(l)
		owns.Files, owns.Links = keepOwned(before.Files, journal.files), keepOwned(before.Links, journal.files)
		for _, path := range journal.settings(c) {
			if !slices.Contains(failed, path) && !slices.ContainsFunc(st.Settings, func(s *agentv1.SettingState) bool { return s.GetPath() == path }) {
				st.Settings = append(st.Settings, &agentv1.SettingState{Path: path, Reason: "Failed",
					Message: "rolled back: " + strings.Join(failed, ", ") + " failed"})
			}
		}
		st.State, st.Message = "Failed", fmt.Sprintf("%s failed; the configuration's files and units were put back", strings.Join(failed, ", "))
	}
	slices.SortFunc(st.Settings, func(a, b *agentv1.SettingState) int { return strings.Compare(a.GetPath(), b.GetPath()) })
	return st, owns
}

// keepOwned is what the agent still owns of a rolled-back configuration:
// the paths it owned before the pass (now restored to that content).
func keepOwned(before, touched []string) []string {
	var out []string
	for _, p := range touched {
		if slices.Contains(before, p) {
			out = append(out, p)
		}
	}
	return out
}

// undo records what a configuration's pass changed, to put it back.
type undo struct {
	files []string
	steps []func(*Linux)
}

// record keeps a path's content, mode or link target before it changes.
func (u *undo) record(l *Linux, path string) {
	full, err := l.under(path)
	if err != nil {
		return
	}
	u.files = append(u.files, path)
	if target, err := os.Readlink(full); err == nil {
		u.steps = append(u.steps, func(l *Linux) { _ = os.Remove(full); _ = os.Symlink(target, full) })
		return
	}
	fi, err := os.Stat(full)
	if err != nil {
		u.steps = append(u.steps, func(*Linux) { _ = os.Remove(full) })
		return
	}
	content, err := os.ReadFile(full)
	if err != nil {
		return
	}
	u.steps = append(u.steps, func(l *Linux) { _ = l.writeFile(nil, path, content, fi.Mode()) })
}

// rollback puts every recorded path back, the last change first.
func (u *undo) rollback(l *Linux) {
	for i := len(u.steps) - 1; i >= 0; i-- {
		u.steps[i](l)
	}
}

// settings are the setting paths of a configuration that the pass touched.
func (u *undo) settings(c *agentv1.Configuration) []string {
	var out []string
	for _, f := range c.GetSettings().GetFiles() {
		if slices.Contains(u.files, f.GetPath()) {
			out = append(out, "files["+f.GetPath()+"]")
		}
	}
	for _, unit := range c.GetSettings().GetSystemdUnits() {
		if slices.Contains(u.files, "/"+unitDir+"/"+unit.GetName()) || slices.Contains(u.files, "/"+unitDir+"/multi-user.target.wants/"+unit.GetName()) {
			out = append(out, "systemdUnits["+unit.GetName()+"]")
		}
	}
	return out
}

// writeFile replaces a file atomically with the content and mode,
// recording in journal (when given) what it was.
func (l *Linux) writeFile(journal *undo, path string, content []byte, mode fs.FileMode) error {
	full, err := l.under(path)
	if err != nil {
		return err
	}
	if journal != nil {
		journal.record(l, path)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	tmp := full + ".kubemdm-tmp"
	if err := os.WriteFile(tmp, content, mode.Perm()); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode.Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, full)
}

func (l *Linux) link(journal *undo, link, target string) error {
	full, err := l.under(link)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if cur, err := os.Readlink(full); err == nil && cur == target {
		return nil
	}
	journal.record(l, link)
	_ = os.Remove(full)
	return os.Symlink(target, full)
}

func (l *Linux) remove(path string) {
	if full, err := l.under(path); err == nil {
		_ = os.Remove(full)
	}
}
