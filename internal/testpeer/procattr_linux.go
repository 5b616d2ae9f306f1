//go:build linux

package testpeer

import "syscall"

// procAttr puts a peer in its own process group and kills it when the test
// process dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
