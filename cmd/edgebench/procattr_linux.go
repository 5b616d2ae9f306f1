//go:build linux

package main

import "syscall"

// procAttr kills a started peer when the bench dies.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
