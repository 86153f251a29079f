// Package userns says which host ids the root of coach's sandboxes is.
//
// No step coach runs holds host root: build steps, shells, verify's
// package installs, maintainer scripts and verify commands all run as root
// of a user namespace whose ids are unprivileged host ids. When coach runs
// as root that is a range of 65536 subordinate ids (namespace ids 0-65535
// are host ids Base-Base+65535), so that a package's own accounts (_apt,
// a service user) exist in the namespace too; when coach runs as a user,
// it is that user alone, as unshare --map-root-user does.
//
// The range is the one /etc/subuid and /etc/subgid list for the name
// "coach" (coach doctor --fix registers it); with none listed, coach uses
// DefaultBase, which it checks no other listed range or account overlaps.
package userns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Name is the name coach's range is registered under in /etc/subuid and
// /etc/subgid.
const Name = "coach"

// Size is how many ids the range holds: every id a Debian or RPM system
// uses, nobody (65534) included.
const Size = 65536

// DefaultBase is the first host id of the range when none is registered:
// above the ranges useradd hands out (SUB_UID_MAX 600100000) and SSSD's
// default id mapping (up to 2000200000), below 2^31 so that no tool reads
// it as negative. It is 65536-aligned, as systemd-nspawn's ranges are.
const DefaultBase = 0x7FFE0000

// IDs is the mapping of a sandbox's user namespace: namespace ids
// 0..Size-1 are host uids UID..UID+Size-1 and gids GID..GID+Size-1.
type IDs struct {
	UID, GID int
	Size     int
	// Source says where the range comes from: "/etc/subuid" (registered
	// for coach), "default" (coach's own, not registered) or "user"
	// (coach runs as a user, who is the namespace's root).
	Source string
}

// Root is the host uid and gid that are root in the namespace: what owns
// the directories a sandbox writes.
func (m IDs) Root() (uid, gid int) { return m.UID, m.GID }

// Ranged reports whether the namespace maps a range (coach runs as root)
// rather than the user alone.
func (m IDs) Ranged() bool { return m.Size > 1 }

func (m IDs) String() string {
	if !m.Ranged() {
		return fmt.Sprintf("uid %d, gid %d (the user running coach)", m.UID, m.GID)
	}
	return fmt.Sprintf("uids %d-%d, gids %d-%d (%s)", m.UID, m.UID+m.Size-1, m.GID, m.GID+m.Size-1, m.Source)
}

// Files are the files the range is read from; tests point them elsewhere.
type Files struct {
	SubUID, SubGID, Passwd, Group string
}

// SystemFiles are the host's.
var SystemFiles = Files{SubUID: "/etc/subuid", SubGID: "/etc/subgid", Passwd: "/etc/passwd", Group: "/etc/group"}

// subRange is one line of /etc/subuid or /etc/subgid.
type subRange struct {
	owner       string
	start, size int
}

func (r subRange) overlaps(start, size int) bool {
	return r.start < start+size && start < r.start+r.size
}

// readSub reads a subordinate id file; a missing file lists nothing.
func readSub(path string) ([]subRange, error) {
	var out []subRange
	err := eachRecord(path, 16<<20, func(parts []string) {
		if len(parts) != 3 || strings.HasPrefix(parts[0], "#") {
			return
		}
		start, err1 := strconv.Atoi(parts[1])
		size, err2 := strconv.Atoi(parts[2])
		if err1 == nil && err2 == nil && start >= 0 && size > 0 {
			out = append(out, subRange{parts[0], start, size})
		}
	})
	return out, err
}

// readIDs reads the numeric ids (third field) of /etc/passwd or /etc/group.
func readIDs(path string) ([]int, error) {
	var out []int
	err := eachRecord(path, 64<<20, func(parts []string) {
		if len(parts) < 3 {
			return
		}
		if id, err := strconv.Atoi(parts[2]); err == nil {
			out = append(out, id)
		}
	})
	return out, err
}

// eachRecord calls f with the colon-separated fields of each non-blank
// line of a file, reading at most limit bytes; a missing file has none.
func eachRecord(path string, limit int64, f func([]string)) error {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(io.LimitReader(file, limit))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			f(strings.Split(line, ":"))
		}
	}
	return sc.Err()
}

// registered is the first range listed for coach of at least Size ids.
func registered(ranges []subRange) (int, bool) {
	for _, r := range ranges {
		if r.owner == Name && r.size >= Size {
			return r.start, true
		}
	}
	return 0, false
}

// Range is the subordinate range coach's sandboxes map when coach runs as
// root: the one registered for coach, else DefaultBase, refused when it
// overlaps another listed range or an account's id.
func Range(files Files) (IDs, error) {
	uids, err := readSub(files.SubUID)
	if err != nil {
		return IDs{}, err
	}
	gids, err := readSub(files.SubGID)
	if err != nil {
		return IDs{}, err
	}
	u, uok := registered(uids)
	g, gok := registered(gids)
	switch {
	case uok && gok:
		return IDs{UID: u, GID: g, Size: Size, Source: files.SubUID}, nil
	case uok != gok:
		return IDs{}, fmt.Errorf("%s lists a range for %s but %s does not (or the other way round): register both (coach doctor --fix)", files.SubUID, Name, files.SubGID)
	}
	if err := free(files, uids, gids, DefaultBase); err != nil {
		return IDs{}, err
	}
	return IDs{UID: DefaultBase, GID: DefaultBase, Size: Size, Source: "default"}, nil
}

// free checks that no range or account takes any id of [base, base+Size).
func free(files Files, uids, gids []subRange, base int) error {
	for _, set := range []struct {
		file   string
		ranges []subRange
	}{{files.SubUID, uids}, {files.SubGID, gids}} {
		for _, r := range set.ranges {
			if r.owner != Name && r.overlaps(base, Size) {
				return fmt.Errorf("%s gives %s ids %d-%d, which overlap coach's default range %d-%d: register a free range for %s (coach doctor --fix picks one)",
					set.file, r.owner, r.start, r.start+r.size-1, base, base+Size-1, Name)
			}
		}
	}
	for _, file := range []string{files.Passwd, files.Group} {
		ids, err := readIDs(file)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id >= base && id < base+Size {
				return fmt.Errorf("%s has an entry with id %d, inside coach's default range %d-%d: register a free range for %s (coach doctor --fix picks one)", file, id, base, base+Size-1, Name)
			}
		}
	}
	return nil
}

// Register lists a range for coach in /etc/subuid and /etc/subgid if none
// is: DefaultBase when it is free, else the first Size-aligned range above
// every listed one and every account. It returns the range and whether it
// wrote anything.
func Register(files Files) (IDs, bool, error) {
	uids, err := readSub(files.SubUID)
	if err != nil {
		return IDs{}, false, err
	}
	gids, err := readSub(files.SubGID)
	if err != nil {
		return IDs{}, false, err
	}
	u, uok := registered(uids)
	g, gok := registered(gids)
	if uok && gok {
		return IDs{UID: u, GID: g, Size: Size, Source: files.SubUID}, false, nil
	}
	base := DefaultBase
	if uok {
		base = u
	} else if gok {
		base = g
	}
	if err := free(files, uids, gids, base); err != nil {
		// Above everything listed and every account, aligned.
		top := 100000
		for _, r := range slices.Concat(uids, gids) {
			top = max(top, r.start+r.size)
		}
		for _, file := range []string{files.Passwd, files.Group} {
			ids, _ := readIDs(file)
			for _, id := range ids {
				if id < 65534 || id > 65535 { // nobody and nogroup are everywhere
					top = max(top, id+1)
				}
			}
		}
		base = (top + Size - 1) / Size * Size
		if base+Size > 1<<31 {
			return IDs{}, false, fmt.Errorf("no free range of %d ids below 2^31 for %s: register one in %s and %s by hand", Size, Name, files.SubUID, files.SubGID)
		}
	}
	line := fmt.Sprintf("%s:%d:%d\n", Name, base, Size)
	for _, f := range []struct {
		path string
		done bool
	}{{files.SubUID, uok}, {files.SubGID, gok}} {
		if f.done {
			continue
		}
		if err := appendLine(f.path, line); err != nil {
			return IDs{}, false, err
		}
	}
	return IDs{UID: base, GID: base, Size: Size, Source: files.SubUID}, true, nil
}

// appendLine adds a line to a system file by writing the new file beside
// it and renaming it into place, keeping its mode.
func appendLine(path, line string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".coach-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(old, line...)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
