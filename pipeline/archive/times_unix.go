//go:build unix

package archive

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// setFileTimes sets an open file's times.
func setFileTimes(f *os.File, mtime time.Time) error {
	tv := unix.NsecToTimeval(mtime.UnixNano())
	return unix.Futimes(int(f.Fd()), []unix.Timeval{tv, tv})
}

// setLinkTimes sets a symlink's own times, by its name in dir.
func setLinkTimes(dir *os.File, name string, mtime time.Time) {
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	unix.UtimesNanoAt(int(dir.Fd()), name, ts, unix.AT_SYMLINK_NOFOLLOW)
}
