//go:build linux

package userns

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func files(t *testing.T, subuid, subgid, passwd string) Files {
	t.Helper()
	dir := t.TempDir()
	f := Files{SubUID: filepath.Join(dir, "subuid"), SubGID: filepath.Join(dir, "subgid"), Passwd: filepath.Join(dir, "passwd"), Group: filepath.Join(dir, "group")}
	for path, body := range map[string]string{f.SubUID: subuid, f.SubGID: subgid, f.Passwd: passwd} {
		if body != "-" {
			os.WriteFile(path, []byte(body), 0o644)
		}
	}
	return f
}

func TestRange(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		subuid, subgid, passwd string
		want                   int    // the base; 0 when an error is wanted
		source                 string // "default" or "registered"
		err                    string
	}{
		{name: "no files", subuid: "-", subgid: "-", passwd: "-", want: DefaultBase, source: "default"},
		{name: "users' ranges elsewhere", subuid: "alice:100000:65536\n", subgid: "alice:100000:65536\n", passwd: "root:x:0:0::/root:/bin/sh\n", want: DefaultBase, source: "default"},
		{name: "registered", subuid: "alice:100000:65536\ncoach:300000:65536\n", subgid: "coach:400000:65536\n", passwd: "-", want: 300000, source: "registered"},
		{name: "registered too small", subuid: "coach:300000:1000\n", subgid: "coach:300000:1000\n", passwd: "-", want: DefaultBase, source: "default"},
		{name: "only uids registered", subuid: "coach:300000:65536\n", subgid: "", passwd: "-", err: "does not"},
		{name: "default taken by a range", subuid: "bob:" + itoa(DefaultBase+5) + ":10\n", subgid: "", passwd: "-", err: "overlap coach's default range"},
		{name: "default taken by an account", subuid: "", subgid: "", passwd: "svc:x:" + itoa(DefaultBase+100) + ":1::/:/bin/false\n", err: "inside coach's default range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := Range(files(t, tc.subuid, tc.subgid, tc.passwd))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ids.UID != tc.want || ids.Size != Size || !ids.Ranged() {
				t.Errorf("range = %+v, want base %d", ids, tc.want)
			}
			if tc.source == "default" && ids.Source != "default" || tc.source == "registered" && ids.Source == "default" {
				t.Errorf("source = %q, want %s", ids.Source, tc.source)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func owner(t *testing.T, path string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return int(sys.Uid), int(sys.Gid), st.Mode()
}

func TestRegister(t *testing.T) {
	f := files(t, "alice:100000:65536\n", "alice:100000:65536\n", "root:x:0:0::/root:/bin/sh\n")
	ids, wrote, err := Register(f)
	if err != nil || !wrote || ids.UID != DefaultBase {
		t.Fatalf("Register = %+v, %v, %v", ids, wrote, err)
	}
	for _, p := range []string{f.SubUID, f.SubGID} {
		b, _ := os.ReadFile(p)
		if want := "alice:100000:65536\ncoach:" + itoa(DefaultBase) + ":65536\n"; string(b) != want {
			t.Errorf("%s = %q, want %q", p, b, want)
		}
	}
	// Registered: Range takes it, and a second Register writes nothing.
	if got, err := Range(f); err != nil || got.UID != DefaultBase || got.Source == "default" {
		t.Errorf("Range after Register = %+v, %v", got, err)
	}
	if _, wrote, err := Register(f); wrote || err != nil {
		t.Errorf("a second Register wrote (%v) or failed (%v)", wrote, err)
	}

	// The default taken: the first aligned range above everything listed.
	f = files(t, "bob:"+itoa(DefaultBase)+":65536\n", "bob:"+itoa(DefaultBase)+":65536\n", "-")
	ids, wrote, err = Register(f)
	if err != nil || !wrote {
		t.Fatalf("Register = %+v, %v, %v", ids, wrote, err)
	}
	if want := DefaultBase + Size; ids.UID != want || ids.UID%Size != 0 {
		t.Errorf("picked %d, want %d", ids.UID, want)
	}
	if _, err := Range(f); err != nil {
		t.Errorf("Range after Register: %v", err)
	}
}

func TestShift(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "su"), []byte("x"), 0o4755)
	os.Lchown(filepath.Join(dir, "su"), 0, 0)
	os.Chmod(filepath.Join(dir, "su"), os.ModeSetuid|0o755)
	os.WriteFile(filepath.Join(dir, "apt"), []byte("x"), 0o600)
	os.Lchown(filepath.Join(dir, "apt"), 42, 65534)
	os.Symlink("/etc/shadow", filepath.Join(dir, "link"))
	ids := IDs{UID: 1000000, GID: 2000000, Size: Size}
	if err := Shift(dir, ids); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		uid, gid int
		mode     os.FileMode
	}{
		{".", 1000000, 2000000, 0}, {"etc/passwd", 1000000, 2000000, 0}, {"apt", 1000042, 2065534, 0},
		{"su", 1000000, 2000000, os.ModeSetuid}, {"link", 1000000, 2000000, 0},
	} {
		uid, gid, mode := owner(t, filepath.Join(dir, c.name))
		if uid != c.uid || gid != c.gid || mode&os.ModeSetuid != c.mode {
			t.Errorf("%s: %d:%d %v, want %d:%d with setuid %v", c.name, uid, gid, mode, c.uid, c.gid, c.mode != 0)
		}
	}
	// The link's target was not touched.
	if uid, _, _ := owner(t, "/etc/shadow"); uid != 0 {
		t.Errorf("the shift followed a symlink: /etc/shadow is owned by %d", uid)
	}
	// Shifting again changes nothing: owners already in the range stay.
	if err := Shift(dir, ids); err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := owner(t, filepath.Join(dir, "apt")); uid != 1000042 {
		t.Errorf("a second shift moved apt to %d", uid)
	}
}
