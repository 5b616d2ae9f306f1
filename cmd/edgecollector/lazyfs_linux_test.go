//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// lazyFS is a loopback FUSE file system that keeps written but unsynced
// data in memory, LazyFS-style: a write is held per file until fsync (or
// msync, which the kernel turns into fsync) writes it to the backing file.
// cut simulates a power cut: from then on nothing more is written, and
// unmounting forgets every unsynced write. Metadata (create, rename,
// unlink) and truncation go to the backing directory at once: only file
// data is lost, which is what a power cut does to a journalled file system
// in data=ordered mode once its metadata is synced.
type lazyFS struct {
	backing   string
	server    *fuse.Server
	cutOff    atomic.Bool
	unmounted atomic.Bool
	// bytes written, synced, and written back after the cut (dirty pages
	// the killed process never synced: dropped too)
	writes, synced, afterCut atomic.Int64
	mu                       sync.Mutex // guards nodes and lost; never held with a node's lock
	nodes                    []*lazyNode
	lost                     map[string]int64 // unsynced bytes per file at the cut
}

// mountLazy mounts a lazyFS of backing on mnt.
func mountLazy(t *testing.T, backing, mnt string) *lazyFS {
	t.Helper()
	l := &lazyFS{backing: backing}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		t.Fatal(err)
	}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		n := &lazyNode{LoopbackNode: fs.LoopbackNode{RootData: r}, fs: l}
		l.mu.Lock()
		l.nodes = append(l.nodes, n)
		l.mu.Unlock()
		return n
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	zero := time.Duration(0)
	srv, err := fs.Mount(mnt, root.RootNode, &fs.Options{
		AttrTimeout: &zero, EntryTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{FsName: "lazyfs", Name: "lazyfs", DirectMount: true},
	})
	if err != nil {
		t.Fatalf("mount the power-cut file system on %s: %v", mnt, err)
	}
	l.server = srv
	t.Cleanup(func() {
		if !l.unmounted.Load() {
			srv.Unmount()
		}
	})
	return l
}

// cut stops every write from reaching the backing directory; it returns
// how many bytes written are then unsynced and dropped.
func (l *lazyFS) cut() int64 {
	l.cutOff.Store(true)
	l.mu.Lock()
	nodes := append([]*lazyNode(nil), l.nodes...)
	l.mu.Unlock()
	var n int64
	lost := map[string]int64{}
	for _, nd := range nodes {
		nd.mu.Lock()
		for _, e := range nd.pending {
			n += int64(len(e.data))
			lost[nd.EmbeddedInode().Path(nil)] += int64(len(e.data))
		}
		nd.mu.Unlock()
	}
	l.mu.Lock()
	l.lost = lost
	l.mu.Unlock()
	return n
}

// unmount forgets what was not synced.
func (l *lazyFS) unmount(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := l.server.Unmount()
		if err == nil {
			l.unmounted.Store(true)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unmount the power-cut file system: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.server.Wait()
}

func (l *lazyFS) isCut() bool { return l.cutOff.Load() }

type extent struct {
	off  int64
	data []byte
}

// lazyNode holds one file's unsynced writes.
type lazyNode struct {
	fs.LoopbackNode
	fs      *lazyFS
	mu      sync.Mutex
	pending []extent
}

var (
	_ fs.NodeOpener    = (*lazyNode)(nil)
	_ fs.NodeCreater   = (*lazyNode)(nil)
	_ fs.NodeGetattrer = (*lazyNode)(nil)
	_ fs.NodeSetattrer = (*lazyNode)(nil)
)

func (n *lazyNode) realPath() string {
	return filepath.Join(n.RootData.Path, n.EmbeddedInode().Path(nil))
}

func (n *lazyNode) wrap(fh fs.FileHandle) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	fd, _ := lf.PassthroughFd()
	return &lazyFile{lf: lf, fd: fd, n: n}
}

func (n *lazyNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.wrap(fh), fl, 0
}

func (n *lazyNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if ln, ok := in.Operations().(*lazyNode); ok {
		return in, ln.wrap(fh), fl, 0
	}
	return in, fh, fl, 0
}

// end is the file's size as its users see it.
func (n *lazyNode) end(real int64) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.pending {
		real = max(real, e.off+int64(len(e.data)))
	}
	return real
}

func (n *lazyNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.LoopbackNode.Getattr(ctx, nil, out); errno != 0 {
		return errno
	}
	if out.Mode&syscall.S_IFREG != 0 {
		out.Size = uint64(n.end(int64(out.Size)))
	}
	return 0
}

func (n *lazyNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		// A truncation goes to the backing file at once, after what was
		// written before it.
		if errno := n.apply(false); errno != 0 {
			return errno
		}
	}
	if errno := n.LoopbackNode.Setattr(ctx, nil, in, out); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, nil, out)
}

// apply writes the pending data to the backing file (and syncs it).
func (n *lazyNode) apply(sync bool) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fs.isCut() {
		n.pending = nil
		return 0
	}
	if len(n.pending) == 0 && !sync {
		return 0
	}
	f, err := os.OpenFile(n.realPath(), os.O_WRONLY, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer f.Close()
	var bytes int64
	for _, e := range n.pending {
		if _, err := f.WriteAt(e.data, e.off); err != nil {
			return fs.ToErrno(err)
		}
		bytes += int64(len(e.data))
	}
	n.pending = nil
	if sync {
		if err := f.Sync(); err != nil {
			return fs.ToErrno(err)
		}
	}
	n.fs.synced.Add(bytes)
	return 0
}

// lazyFile is an open file: reads see the backing file with the pending
// writes on top; writes are held; fsync applies them.
type lazyFile struct {
	lf *fs.LoopbackFile
	fd int
	n  *lazyNode
}

var (
	_ fs.FileReader    = (*lazyFile)(nil)
	_ fs.FileWriter    = (*lazyFile)(nil)
	_ fs.FileFsyncer   = (*lazyFile)(nil)
	_ fs.FileFlusher   = (*lazyFile)(nil)
	_ fs.FileReleaser  = (*lazyFile)(nil)
	_ fs.FileGetattrer = (*lazyFile)(nil)
	_ fs.FileSetattrer = (*lazyFile)(nil)
)

func (f *lazyFile) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	size := f.n.end(st.Size)
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	buf = buf[:min(int64(len(buf)), size-off)]
	clear(buf)
	if off < st.Size {
		if _, err := syscall.Pread(f.fd, buf[:min(int64(len(buf)), st.Size-off)], off); err != nil {
			return nil, fs.ToErrno(err)
		}
	}
	f.n.mu.Lock()
	for _, e := range f.n.pending {
		lo, hi := max(off, e.off), min(off+int64(len(buf)), e.off+int64(len(e.data)))
		if lo < hi {
			copy(buf[lo-off:hi-off], e.data[lo-e.off:hi-e.off])
		}
	}
	f.n.mu.Unlock()
	return fuse.ReadResultData(buf), 0
}

func (f *lazyFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if f.n.fs.isCut() {
		// The power is off: nothing reaches the disk (the kernel writes
		// back pages the killed process dirtied and never synced).
		f.n.fs.afterCut.Add(int64(len(data)))
		return uint32(len(data)), 0
	}
	f.n.mu.Lock()
	f.n.pending = append(f.n.pending, extent{off, append([]byte(nil), data...)})
	f.n.mu.Unlock()
	f.n.fs.writes.Add(int64(len(data)))
	return uint32(len(data)), 0
}

func (f *lazyFile) Fsync(ctx context.Context, flags uint32) syscall.Errno { return f.n.apply(true) }

func (f *lazyFile) Flush(ctx context.Context) syscall.Errno { return 0 } // close is not a sync

func (f *lazyFile) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }

func (f *lazyFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.n.Getattr(ctx, nil, out)
}

func (f *lazyFile) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.n.Setattr(ctx, nil, in, out)
}

// TestLazyFSDropsUnsynced proves the power-cut file system itself: data
// written and synced survives a cut, data written and not synced does not,
// and reads before the cut see both.
func TestLazyFSDropsUnsynced(t *testing.T) {
	needFUSE(t)
	backing, mnt := t.TempDir(), t.TempDir()
	l := mountLazy(t, backing, mnt)
	write := func(name, body string, sync bool) {
		f, err := os.OpenFile(filepath.Join(mnt, name), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(body); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	write("synced", "kept", true)
	write("unsynced", "lost", false)
	write("synced", "kept and more", false) // rewritten, not synced again
	for name, want := range map[string]string{"synced": "kept and more", "unsynced": "lost"} {
		if b, _ := os.ReadFile(filepath.Join(mnt, name)); string(b) != want {
			t.Fatalf("before the cut %s reads %q, want %q", name, b, want)
		}
	}
	if n := l.cut(); n != int64(len("lost")+len("kept and more")) {
		t.Fatalf("%d unsynced bytes at the cut", n)
	}
	l.unmount(t)
	for name, want := range map[string]string{"synced": "kept", "unsynced": ""} {
		if b, _ := os.ReadFile(filepath.Join(backing, name)); string(b) != want {
			t.Fatalf("after the cut %s holds %q, want %q", name, b, want)
		}
	}
}
