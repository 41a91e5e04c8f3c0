//go:build !linux

package dovecottest

import "syscall"

// procAttr puts Dovecot in its own process group, so that stopping it
// reaches every child.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
