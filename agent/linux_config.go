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

// applyConfigurations converges files and systemd units to the
// configurations and reports each. Settings a Linux host has no use for
// (passcode, Wi-Fi, apps, ...) and packages are reported Unsupported.
func (l *Linux) applyConfigurations(configs []*agentv1.Configuration) []*agentv1.ConfigurationState {
	before := l.readOwned()
	var now owned
	var states []*agentv1.ConfigurationState
	for _, c := range configs {
		st := &agentv1.ConfigurationState{Name: c.GetName(), State: "Applied", Revision: c.GetRevision()}
		fail := func(path, reason, msg string) {
			st.Settings = append(st.Settings, &agentv1.SettingState{Path: path, Reason: reason, Message: msg})
		}
		for _, f := range c.GetSettings().GetFiles() {
			path := "files[" + f.GetPath() + "]"
			if err := l.writeFile(f.GetPath(), f.GetContent(), fs.FileMode(f.GetMode())); err != nil {
				fail(path, "Failed", err.Error())
				continue
			}
			now.Files = append(now.Files, f.GetPath())
		}
		for _, u := range c.GetSettings().GetSystemdUnits() {
			path := "systemdUnits[" + u.GetName() + "]"
			unit := "/" + unitDir + "/" + u.GetName()
			if u.GetContent() != "" {
				if err := l.writeFile(unit, []byte(u.GetContent()), 0o644); err != nil {
					fail(path, "Failed", err.Error())
					continue
				}
				now.Files = append(now.Files, unit)
			}
			if u.GetEnabled() {
				link := "/" + unitDir + "/multi-user.target.wants/" + u.GetName()
				if err := l.link(link, unit); err != nil {
					fail(path, "Failed", err.Error())
					continue
				}
				now.Links = append(now.Links, link)
			}
		}
		for path := range settingValues(c.GetSettings()) {
			if !strings.HasPrefix(path, "files[") && !strings.HasPrefix(path, "systemdUnits[") {
				fail(path, "Unsupported", "the Linux agent does not apply "+strings.SplitN(path, "[", 2)[0])
			}
		}
		slices.SortFunc(st.Settings, func(a, b *agentv1.SettingState) int { return strings.Compare(a.GetPath(), b.GetPath()) })
		for _, s := range st.Settings {
			if s.GetReason() == "Failed" {
				st.State, st.Message = "Failed", "some settings could not be applied"
				break
			}
		}
		states = append(states, st)
	}
	// What the agent wrote before and no configuration wants any more.
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
	_ = l.writeOwned(now)
	return states
}

// writeFile replaces a file atomically with the content and mode.
func (l *Linux) writeFile(path string, content []byte, mode fs.FileMode) error {
	full, err := l.under(path)
	if err != nil {
		return err
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

func (l *Linux) link(link, target string) error {
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
	_ = os.Remove(full)
	return os.Symlink(target, full)
}

func (l *Linux) remove(path string) {
	if full, err := l.under(path); err == nil {
		_ = os.Remove(full)
	}
}
