package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	agentv1 "github.com/kubemdm/kubemdm/api/agent/v1"
)

// unitDir is where the agent installs systemd units, under Root.
const unitDir = "etc/systemd/system"

// unitSearchPath is where systemd finds a unit the host installed, in the
// order it looks.
var unitSearchPath = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// owned is what the Linux agent wrote under Root, so that a configuration
// removed or changed takes away exactly what the agent put there, and puts
// back what the host had there before.
type owned struct {
	// Paths are the files, units and enable links the agent wrote.
	Paths map[string]ownedPath `json:"paths,omitempty"`
	// Packages are the packages the agent installed.
	Packages []string `json:"packages,omitempty"`
	// Retry are the directories whose host tool failed after the last
	// pass; the next pass runs it again, changed or not.
	Retry []string `json:"retry,omitempty"`

	// Files and Links are the lists an earlier agent kept; read once and
	// turned into Paths.
	Files []string `json:"files,omitempty"`
	Links []string `json:"links,omitempty"`
}

// ownedPath is one path the agent wrote.
type ownedPath struct {
	// Configuration is the configuration that wrote it.
	Configuration string `json:"configuration,omitempty"`
	// Original is what the host had at the path before the agent first
	// wrote there; nil when there was nothing.
	Original *original `json:"original,omitempty"`
}

// original is the host's own file or link, kept in the agent's directory
// while a configuration replaces it.
type original struct {
	// Backup is the file under Dir/originals holding the content.
	Backup string      `json:"backup,omitempty"`
	Mode   fs.FileMode `json:"mode,omitempty"`
	// Link is the target when the host had a symbolic link there.
	Link string `json:"link,omitempty"`
}

func (l *Linux) ownedPath() string { return filepath.Join(l.Dir, "owned.json") }

func (l *Linux) readOwned() owned {
	var o owned
	if b, err := os.ReadFile(l.ownedPath()); err == nil {
		_ = json.Unmarshal(b, &o)
	}
	if o.Paths == nil {
		o.Paths = map[string]ownedPath{}
	}
	for _, p := range append(o.Files, o.Links...) {
		if _, ok := o.Paths[p]; !ok {
			o.Paths[p] = ownedPath{}
		}
	}
	o.Files, o.Links = nil, nil
	return o
}

func (l *Linux) writeOwned(o owned) error {
	slices.Sort(o.Packages)
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
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

// pass is one convergence of the configurations: what the agent owned
// before it, and the paths it changed, which say which host tools must
// read their files again.
type pass struct {
	before  owned
	changed []string
	// originals are what the host had at the paths the pass took.
	originals map[string]*original
}

func (p *pass) change(path string) { p.changed = append(p.changed, path) }

// hostHooks have a host tool read again the files under a directory after
// a pass changed one there.
var hostHooks = []struct {
	dir  string
	argv []string
}{
	{"/etc/systemd/system/", []string{"systemctl", "daemon-reload"}},
	{"/etc/dconf/db/", []string{"dconf", "update"}},
	{"/usr/local/share/ca-certificates/", []string{"update-ca-certificates"}},
	{"/etc/NetworkManager/system-connections/", []string{"nmcli", "connection", "reload"}},
}

// applyConfigurations converges files, systemd units and packages to the
// configurations and reports each. A configuration is all or nothing for
// its files and units: when one of its settings fails, the pass puts back
// what it wrote and the configuration keeps everything its last good
// revision set. Settings a Linux host has no use for (passcode, Wi-Fi,
// apps, ...) are reported Unsupported.
func (l *Linux) applyConfigurations(configs []*agentv1.Configuration) []*agentv1.ConfigurationState {
	p := &pass{before: l.readOwned()}
	now := owned{Paths: map[string]ownedPath{}}
	var states []*agentv1.ConfigurationState
	byName := map[string]*agentv1.ConfigurationState{}
	for _, c := range configs {
		st, owns := l.applyConfiguration(p, c)
		maps.Copy(now.Paths, owns.Paths)
		now.Packages = append(now.Packages, owns.Packages...)
		states = append(states, st)
		byName[c.GetName()] = st
	}
	// What the agent put there before and no configuration wants any more
	// goes, and the host's own file comes back. Links first: they point at
	// unit files.
	paths := slices.Sorted(maps.Keys(p.before.Paths))
	slices.SortStableFunc(paths, func(a, b string) int { return boolRank(!isLink(a)) - boolRank(!isLink(b)) })
	for _, path := range paths {
		if _, ok := now.Paths[path]; !ok {
			if err := l.giveBack(p, path, p.before.Paths[path]); err != nil {
				// Still the agent's: the next pass tries again.
				now.Paths[path] = p.before.Paths[path]
			}
		}
	}
	for _, pkg := range p.before.Packages {
		if !slices.Contains(now.Packages, pkg) {
			if err := l.dpkg("--remove", pkg); err != nil {
				now.Packages = append(now.Packages, pkg)
			}
		}
	}
	now.Retry = l.runHooks(p, now, byName, configs)
	_ = l.writeOwned(now)
	l.dropStrayBackups(now)
	l.rewrote = nil
	for path, o := range now.Paths {
		if slices.Contains(p.changed, path) && !slices.Contains(l.rewrote, o.Configuration) {
			l.rewrote = append(l.rewrote, o.Configuration)
		}
	}
	return states
}

// runHooks has the host's tools take what the pass changed: systemd, dconf,
// the trust store and NetworkManager read their files again, units whose
// file or link changed are restarted, units no longer enabled are stopped.
// A tool that fails fails the configurations that own a file it reads,
// and runs again on the next pass; runHooks returns those directories.
func (l *Linux) runHooks(p *pass, now owned, byName map[string]*agentv1.ConfigurationState, configs []*agentv1.Configuration) []string {
	if l.Run == nil || (len(p.changed) == 0 && len(p.before.Retry) == 0) {
		return nil
	}
	var retry []string
	failOwners := func(dir string, err error) {
		for path, o := range now.Paths {
			if st := byName[o.Configuration]; st != nil && strings.HasPrefix(path, dir) && st.GetState() == "Applied" {
				st.State, st.Message = "Failed", err.Error()
			}
		}
	}
	for _, h := range hostHooks {
		if slices.Contains(p.before.Retry, h.dir) || slices.ContainsFunc(p.changed, func(path string) bool { return strings.HasPrefix(path, h.dir) }) {
			if err := l.Run(h.argv...); err != nil {
				failOwners(h.dir, err)
				retry = append(retry, h.dir)
			}
		}
	}
	wants := "/" + unitDir + "/multi-user.target.wants/"
	for _, path := range p.changed {
		if name, ok := strings.CutPrefix(path, wants); ok {
			if _, enabled := now.Paths[path]; !enabled {
				_ = l.Run("systemctl", "stop", name)
			}
		}
	}
	for _, c := range configs {
		for _, u := range c.GetSettings().GetSystemdUnits() {
			unit, link := "/"+unitDir+"/"+u.GetName(), wants+u.GetName()
			if u.GetEnabled() && (slices.Contains(p.changed, unit) || slices.Contains(p.changed, link)) {
				if err := l.Run("systemctl", "restart", u.GetName()); err != nil {
					if st := byName[c.GetName()]; st.GetState() == "Applied" {
						st.State, st.Message = "Failed", err.Error()
						st.Settings = append(st.Settings, &agentv1.SettingState{Path: "systemdUnits[" + u.GetName() + "]", Reason: "Failed", Message: err.Error()})
					}
				}
			}
		}
	}
	return retry
}

// RunCommand runs a host tool, its output in the error when it fails.
func RunCommand(argv ...string) error {
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func isLink(path string) bool { return strings.Contains(path, ".wants/") }

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// applyConfiguration applies one configuration and returns its state and
// what the agent owns for it afterwards.
func (l *Linux) applyConfiguration(p *pass, c *agentv1.Configuration) (*agentv1.ConfigurationState, owned) {
	st := &agentv1.ConfigurationState{Name: c.GetName(), State: "Applied", Revision: c.GetRevision()}
	owns := owned{Paths: map[string]ownedPath{}}
	journal := &undo{}
	var failed []string
	fail := func(path, reason, msg string) {
		st.Settings = append(st.Settings, &agentv1.SettingState{Path: path, Reason: reason, Message: msg})
		if reason == "Failed" {
			failed = append(failed, path)
		}
	}
	take := func(path string) { owns.Paths[path] = l.adopt(p, c.GetName(), path) }
	for _, f := range c.GetSettings().GetFiles() {
		own, err := l.resolveIDs(f.GetOwner(), f.GetGroup())
		if err == nil {
			err = l.writeFile(p, journal, f.GetPath(), f.GetContent(), fs.FileMode(f.GetMode()), own)
		}
		if err != nil {
			fail("files["+f.GetPath()+"]", "Failed", err.Error())
			continue
		}
		take(f.GetPath())
	}
	for _, u := range c.GetSettings().GetSystemdUnits() {
		if err := l.applyUnit(p, journal, u, take); err != nil {
			fail("systemdUnits["+u.GetName()+"]", "Failed", err.Error())
		}
	}
	for _, pkg := range c.GetSettings().GetPackages() {
		installed, err := l.ensurePackage(pkg)
		if err != nil {
			fail("packages["+pkg.GetName()+"]", "Failed", err.Error())
			continue
		}
		// A package the agent installed, or one it installed before and
		// still manages, is the agent's to remove when it is no longer
		// wanted; one the host had is not.
		if (installed || slices.Contains(p.before.Packages, pkg.GetName())) && pkg.GetState() == "Present" {
			owns.Packages = append(owns.Packages, pkg.GetName())
		}
	}
	for _, hs := range hostSettings(c.GetSettings()) {
		if hs.unsupported != "" {
			fail(hs.path, "Unsupported", hs.unsupported)
			continue
		}
		for _, f := range hs.files {
			if err := l.writeFile(p, journal, f.path, []byte(f.content), f.mode, nil); err != nil {
				fail(hs.path, "Failed", err.Error())
				break
			}
			take(f.path)
			journal.setting(f.path, hs.path)
		}
	}
	if len(failed) > 0 {
		// Files and units go back to what they were, and the configuration
		// keeps what its last good revision wrote; packages installed on
		// the way stay (dpkg has no undo) and stay the agent's.
		journal.rollback(l)
		owns.Paths = map[string]ownedPath{}
		for path, o := range p.before.Paths {
			// Paths an earlier agent recorded without their
			// configuration stay too: one of them may be this one's.
			if o.Configuration == c.GetName() || o.Configuration == "" {
				owns.Paths[path] = o
			}
		}
		for _, pkg := range c.GetSettings().GetPackages() {
			if slices.Contains(p.before.Packages, pkg.GetName()) && !slices.Contains(owns.Packages, pkg.GetName()) {
				owns.Packages = append(owns.Packages, pkg.GetName())
			}
		}
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

// applyUnit writes a unit's file when the configuration carries one, and
// enables it with a multi-user.target.wants link to where the unit is: the
// file written, or the host's own unit.
func (l *Linux) applyUnit(p *pass, journal *undo, u *agentv1.SystemdUnit, take func(string)) error {
	unit := "/" + unitDir + "/" + u.GetName()
	if u.GetContent() != "" {
		if err := l.writeFile(p, journal, unit, []byte(u.GetContent()), 0o644, nil); err != nil {
			return err
		}
		take(unit)
	} else if u.GetEnabled() {
		found := ""
		for _, dir := range unitSearchPath {
			if _, agents := p.before.Paths[dir+"/"+u.GetName()]; agents {
				// A unit file an earlier revision wrote goes at the end
				// of this pass unless written again.
				continue
			}
			if full, err := l.under(dir + "/" + u.GetName()); err == nil {
				if _, err := os.Stat(full); err == nil {
					found = dir + "/" + u.GetName()
					break
				}
			}
		}
		if found == "" {
			return fmt.Errorf("unit %s has no content and is not installed on the host (%s)", u.GetName(), strings.Join(unitSearchPath, ", "))
		}
		unit = found
	}
	if !u.GetEnabled() {
		return nil
	}
	link := "/" + unitDir + "/multi-user.target.wants/" + u.GetName()
	if err := l.link(p, journal, link, unit); err != nil {
		return err
	}
	take(link)
	return nil
}

// adopt is the ownership of a path the pass wrote: carried over when the
// agent owned it before, else with what the host had there, kept by
// preserve before the first write.
func (l *Linux) adopt(p *pass, configuration, path string) ownedPath {
	if o, ok := p.before.Paths[path]; ok {
		o.Configuration = configuration
		return o
	}
	return ownedPath{Configuration: configuration, Original: p.originals[path]}
}

// backupName is the file under Dir/originals that keeps the host's own
// content of a path.
func backupName(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:12])
}

// preserve keeps the host's own file or link at a path the agent is about
// to take, before anything changes there, so that a pass cut short
// (kill -9, a power cut) cannot lose it. A backup already there is from
// such a pass, so it is the host's original and is kept. Two
// configurations of one pass taking the same path share what the first
// found.
func (l *Linux) preserve(p *pass, path string) error {
	if _, owned := p.before.Paths[path]; owned {
		return nil
	}
	if _, done := p.originals[path]; done {
		return nil
	}
	full, err := l.under(path)
	if err != nil {
		return err
	}
	var o *original
	if target, err := os.Readlink(full); err == nil {
		o = &original{Link: target}
	} else if fi, err := os.Lstat(full); err == nil && fi.Mode().IsRegular() {
		o = &original{Backup: backupName(path), Mode: fi.Mode().Perm()}
		backup := filepath.Join(l.Dir, "originals", o.Backup)
		if kept, err := os.Stat(backup); err == nil {
			o.Mode = kept.Mode().Perm()
		} else {
			content, err := os.ReadFile(full)
			if err != nil {
				return fmt.Errorf("keeping the host's own %s: %w", path, err)
			}
			if err := os.MkdirAll(filepath.Dir(backup), 0o700); err != nil {
				return err
			}
			// The backup carries the original's mode; its directory is
			// the agent's alone.
			tmp := backup + ".tmp"
			if err := os.WriteFile(tmp, content, o.Mode); err == nil {
				err = os.Chmod(tmp, o.Mode)
			}
			if err := os.Rename(tmp, backup); err != nil {
				return fmt.Errorf("keeping the host's own %s: %w", path, err)
			}
		}
	}
	if p.originals == nil {
		p.originals = map[string]*original{}
	}
	p.originals[path] = o
	return nil
}

// dropStrayBackups removes the backups no owned path refers to: those of
// a failed configuration, whose pass put the host's file back.
func (l *Linux) dropStrayBackups(now owned) {
	entries, err := os.ReadDir(filepath.Join(l.Dir, "originals"))
	if err != nil {
		return
	}
	kept := map[string]bool{}
	for _, o := range now.Paths {
		if o.Original != nil {
			kept[o.Original.Backup] = true
		}
	}
	for _, e := range entries {
		if !kept[e.Name()] {
			_ = os.Remove(filepath.Join(l.Dir, "originals", e.Name()))
		}
	}
}

// giveBack undoes the agent's hold on a path: the host's own file or link
// comes back, or the path goes.
func (l *Linux) giveBack(p *pass, path string, o ownedPath) error {
	full, err := l.under(path)
	if err != nil {
		return nil // never written: nothing to undo
	}
	p.change(path)
	switch orig := o.Original; {
	case orig == nil:
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	case orig.Link != "":
		_ = os.Remove(full)
		return os.Symlink(orig.Link, full)
	case orig.Backup != "":
		backup := filepath.Join(l.Dir, "originals", orig.Backup)
		content, err := os.ReadFile(backup)
		if err != nil {
			return fmt.Errorf("reading the host's own %s: %w", path, err)
		}
		if err := l.writeFile(p, nil, path, content, orig.Mode, nil); err != nil {
			return err
		}
		_ = os.Remove(backup)
	}
	return nil
}

// undo records what a configuration's pass changed, to put it back.
type undo struct {
	files []string
	steps []func(*Linux)
	// recorded are the paths whose first change of the pass is recorded.
	recorded map[string]bool
	// carries names the setting of each file a mapped setting wrote.
	carries map[string]string
}

// record keeps a path's content, mode or link target before it changes.
func (u *undo) record(l *Linux, path string) {
	full, err := l.under(path)
	if err != nil {
		return
	}
	if u.recorded == nil {
		u.recorded = map[string]bool{}
	}
	if u.recorded[path] {
		return // the first change of the pass is the one to undo
	}
	u.recorded[path] = true
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
	u.steps = append(u.steps, func(l *Linux) { _ = l.writeFile(&pass{}, nil, path, content, fi.Mode(), nil) })
}

// rollback puts every recorded path back, the last change first.
func (u *undo) rollback(l *Linux) {
	for i := len(u.steps) - 1; i >= 0; i-- {
		u.steps[i](l)
	}
}

// setting records which setting a file the pass wrote carries.
func (u *undo) setting(file, setting string) {
	if u.carries == nil {
		u.carries = map[string]string{}
	}
	u.carries[file] = setting
}

// settings are the setting paths of a configuration that the pass touched.
func (u *undo) settings(c *agentv1.Configuration) []string {
	var out []string
	for _, file := range u.files {
		if s, ok := u.carries[file]; ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
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

// writeFile replaces a file atomically with the content, mode and, when
// given, owner, recording in journal (when given) what it was. A file that
// already reads so is left alone; one written is read back.
func (l *Linux) writeFile(p *pass, journal *undo, path string, content []byte, mode fs.FileMode, own *ids) error {
	full, err := l.under(path)
	if err != nil {
		return err
	}
	if journal != nil {
		journal.record(l, path)
		// A file the host already had, even one that reads as the
		// configuration says, is the host's to have back.
		if err := l.preserve(p, path); err != nil {
			return err
		}
	}
	if fi, err := os.Lstat(full); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == mode.Perm() && own.match(fi) {
		if cur, err := os.ReadFile(full); err == nil && bytes.Equal(cur, content) {
			return nil
		}
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
	if own != nil {
		if err := os.Lchown(tmp, own.uid, own.gid); err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, full); err != nil {
		return err
	}
	p.change(path)
	// Verified by reading it back, not by trusting the calls above.
	if got, err := os.ReadFile(full); err != nil || !bytes.Equal(got, content) {
		return fmt.Errorf("%s does not read back as written: %v", path, err)
	}
	if fi, err := os.Stat(full); err != nil || fi.Mode().Perm() != mode.Perm() || !own.match(fi) {
		return fmt.Errorf("%s does not have mode %#o and its owner after writing it", path, mode.Perm())
	}
	return nil
}

// ids are the owner and group a file must have; nil leaves them as the
// agent creates files (root, on a host).
type ids struct{ uid, gid int }

func (o *ids) match(fi fs.FileInfo) bool {
	if o == nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == o.uid && int(st.Gid) == o.gid
}

// resolveIDs reads an owner and group, by name from the host's own
// /etc/passwd and /etc/group under Root, or as numbers. Both empty is nil.
func (l *Linux) resolveIDs(owner, group string) (*ids, error) {
	if owner == "" && group == "" {
		return nil, nil
	}
	uid, err := l.lookupID("etc/passwd", owner)
	if err != nil {
		return nil, err
	}
	gid, err := l.lookupID("etc/group", group)
	if err != nil {
		return nil, err
	}
	return &ids{uid, gid}, nil
}

func (l *Linux) lookupID(db, name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	b, err := os.ReadFile(filepath.Join(l.Root, db))
	if err != nil {
		return 0, fmt.Errorf("looking up %s: %w", name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) >= 3 && f[0] == name {
			if n, err := strconv.Atoi(f[2]); err == nil {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("%s is not in the host's /%s", name, db)
}

func (l *Linux) link(p *pass, journal *undo, link, target string) error {
	full, err := l.under(link)
	if err != nil {
		return err
	}
	journal.record(l, link)
	if err := l.preserve(p, link); err != nil {
		return err
	}
	if cur, err := os.Readlink(full); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	_ = os.Remove(full)
	p.change(link)
	if err := os.Symlink(target, full); err != nil {
		return err
	}
	if got, err := os.Readlink(full); err != nil || got != target {
		return fmt.Errorf("%s does not point to %s after linking it", link, target)
	}
	return nil
}
