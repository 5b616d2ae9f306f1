// Package latchfile keeps the interlock latches (edge.LatchState) in a
// small JSON file in the data directory: written to a temporary file,
// synced, renamed over the old one and the directory synced, so a power cut
// leaves either the old or the new state, never a torn one. It must never
// be called from a poll tick: edge.Engine saves from its own goroutine.
package latchfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// File is an edge.LatchStore in one file.
type File struct {
	Path string
}

var _ edge.LatchStore = (*File)(nil)

// New returns the store at path (e.g. <data dir>/interlocks.json).
func New(path string) *File { return &File{Path: path} }

// onDisk is the file's content; the format of the first wave's
// interlocks.json, so an upgrade keeps its latches.
type onDisk struct {
	Latched     map[string]time.Time `json:"latched"`
	Bypassed    []string             `json:"bypassed,omitempty"`
	Maintenance []string             `json:"maintenance,omitempty"`
}

// Load reads the file; a missing file is an empty state.
func (f *File) Load() (edge.LatchState, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return edge.LatchState{}, nil
	}
	if err != nil {
		return edge.LatchState{}, fmt.Errorf("read %s: %w", f.Path, err)
	}
	var d onDisk
	if err := json.Unmarshal(b, &d); err != nil {
		// Kept for the safety engineer, out of the way of the next save.
		aside := fmt.Sprintf("%s.unreadable-%s", f.Path, time.Now().UTC().Format("20060102T150405"))
		if rerr := os.Rename(f.Path, aside); rerr != nil {
			aside = f.Path
		}
		return edge.LatchState{}, fmt.Errorf("%s is unreadable (%v); kept as %s", f.Path, err, aside)
	}
	return edge.LatchState{Latched: d.Latched, Bypassed: d.Bypassed, Maintenance: d.Maintenance}, nil
}

// Save replaces the file with st, durably.
func (f *File) Save(st edge.LatchState) error {
	b, err := json.MarshalIndent(onDisk{Latched: st.Latched, Bypassed: st.Bypassed, Maintenance: st.Maintenance}, "", "  ")
	if err != nil {
		return err
	}
	tmp := f.Path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save interlock latches: %w", err)
	}
	_, err = w.Write(b)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.Path)
	}
	if err != nil {
		return fmt.Errorf("save interlock latches to %s: %w", f.Path, err)
	}
	if d, err := os.Open(filepath.Dir(f.Path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
