// Command probe tries, from wherever coach runs it (a build step, a shell,
// a maintainer script, a verify command), what hostile code would do to
// reach the host, and prints one line per attempt:
//
//	PROBE <position> <attempt>: REACHED
//	PROBE <position> <attempt>: blocked (<why>)
//
// Every attempt is harmless when it succeeds: it writes a sysctl's own
// value back, reads 512 bytes of a device node, connects and closes.
// The host-side values (a secret file, a listening port, the root disk's
// device number, the Debian mirror) are set at link time with -X.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var (
	secret     string // a host file only the host can read
	secretText string // its content
	hostPort   string // a port a host server listens on at 127.0.0.1
	diskMajor  string // the host root filesystem's device number
	diskMinor  string
	mirror     string // host:port of the Debian mirror the host reaches
)

func main() {
	pos := "unknown"
	if len(os.Args) > 1 {
		pos = os.Args[1]
	}
	report := func(what string, err error) {
		if err == nil {
			fmt.Printf("PROBE %s %s: REACHED\n", pos, what)
		} else {
			fmt.Printf("PROBE %s %s: blocked (%v)\n", pos, what, err)
		}
	}
	// Host root: uid 0 here is uid 0 of the host.
	err := fmt.Errorf("not host root")
	if b, rerr := os.ReadFile("/proc/self/uid_map"); rerr != nil {
		err = rerr
	} else if f := strings.Fields(string(b)); len(f) >= 2 && f[0] == "0" && f[1] == "0" {
		err = nil
	}
	report("run as host root", err)
	// The host's clock, set to the time it has.
	var now unix.Timespec
	err = unix.ClockGettime(unix.CLOCK_REALTIME, &now)
	if err == nil {
		err = unix.ClockSettime(unix.CLOCK_REALTIME, &now)
	}
	report("set the host's clock", err)
	// Host kernel settings: write back the value that is there.
	for _, f := range []string{"/proc/sys/vm/swappiness", "/proc/sys/kernel/core_pattern"} {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(f, b, 0)
		}
		report("write "+f, err)
	}
	// A device node of the host's disk, then a read of it.
	major, _ := strconv.Atoi(diskMajor)
	minor, _ := strconv.Atoi(diskMinor)
	node := fmt.Sprintf("/tmp/coach-probe-disk-%d", os.Getpid())
	err = unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(major), uint32(minor))))
	if err == nil {
		var f *os.File
		if f, err = os.Open(node); err == nil {
			_, err = f.Read(make([]byte, 512))
			f.Close()
		}
		os.Remove(node)
	}
	report("mknod and read the host disk", err)
	// A devtmpfs, which holds every device of the host.
	dir := fmt.Sprintf("/tmp/coach-probe-dev-%d", os.Getpid())
	os.MkdirAll(dir, 0o755)
	err = unix.Mount("devtmpfs", dir, "devtmpfs", 0, "")
	if err == nil {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	report("mount devtmpfs", err)
	os.MkdirAll(dir, 0o755)
	// Mounts: a tmpfs of its own, and the read-only root made writable.
	err = unix.Mount("tmpfs", dir, "tmpfs", 0, "")
	if err == nil {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	report("mount a tmpfs", err)
	err = unix.Mount("", "/usr", "", unix.MS_REMOUNT|unix.MS_BIND, "")
	if err == nil {
		err = os.WriteFile("/usr/coach-probe", nil, 0o644)
		os.Remove("/usr/coach-probe")
	}
	report("remount /usr read-write and write there", err)
	os.Remove(dir)
	// A server on the host's loopback.
	report("connect to the host's 127.0.0.1:"+hostPort, dial("127.0.0.1:"+hostPort))
	// A file of the host.
	report("read the host's "+secret, readSecret())
	// The classic chroot escape, then the host's file again.
	report("chroot escape", chrootEscape())
	// The network: the Debian mirror by name and by connection.
	if host, _, err := net.SplitHostPort(mirror); err == nil {
		if net.ParseIP(host) == nil {
			_, err := net.LookupHost(host)
			report("resolve "+host, err)
		}
		report("connect to the mirror "+mirror, dial(mirror))
	}
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

func readSecret() error {
	b, err := os.ReadFile(secret)
	if err != nil {
		return err
	}
	if string(b) != secretText {
		return fmt.Errorf("a file is there, but not the host's")
	}
	return nil
}

func chrootEscape() error {
	dir := fmt.Sprintf("/tmp/coach-probe-jail-%d", os.Getpid())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Chroot(dir); err != nil {
		return err
	}
	for i := 0; i < 64; i++ {
		unix.Chdir("..")
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	return readSecret()
}
