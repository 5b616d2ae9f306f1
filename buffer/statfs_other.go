//go:build !linux

package buffer

// freeSpace is unknown off Linux: the cap from free space is not enforced.
func freeSpace(dir string) (int64, error) { return 1 << 62, nil }
