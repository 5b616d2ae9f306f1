//go:build !linux

package testpeer

import "syscall"

// procAttr puts a peer in its own process group (no parent-death signal
// outside Linux).
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
