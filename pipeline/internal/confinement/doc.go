// Package confinement holds no code: its tests run a probe of what hostile
// code would do to reach the host (write host sysctls, make and read a
// device node of the host's disk, mount a devtmpfs, connect to the host's
// loopback, read a host file, escape a chroot, reach the Debian mirror)
// from every place coach runs code it did not write: a build step, coach
// shell, each maintainer script of a deb and of an rpm, and the project's
// verify commands. Every attempt must be blocked in every position.
package confinement
