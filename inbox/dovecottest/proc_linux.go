package dovecottest

import "syscall"

// procAttr puts Dovecot in its own process group, so that stopping it
// reaches every child, and has it terminated if the test process dies
// before its cleanup runs.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
