//go:build !linux

package buffer

// pageOut gives mapped pages back on Linux only (pageout_linux.go).
func (s *Badger) pageOut() {}
